"""compress/: distillation, pruning, quantization-aware training and clustering."""
