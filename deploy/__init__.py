"""deploy/: int8 conversion, TFLite Micro C arrays, the TFLM host emulator and model reports."""
