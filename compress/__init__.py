"""compress/: distillation, pruning, quantization-aware training and clustering.

`compress(spec)` runs a spec's recipe (`compress_model` on an explicit model); `parse_recipe` validates one (the compress
stage and the pipeline's up-front check call it); each step also works alone on a tf_keras model (see STEPS).
"""

from mcuforge.compress.pipeline import STEPS, Recipe, compress, compress_model, measure, parse_recipe

__all__ = ["STEPS", "Recipe", "compress", "compress_model", "measure", "parse_recipe"]
