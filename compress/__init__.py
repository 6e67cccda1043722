"""compress/: distillation, pruning, quantization-aware training and clustering.

`compress(spec)` runs a spec's recipe; `parse_recipe` validates one (spec loading
calls it); each step also works alone on a tf_keras model (see STEPS).
"""

from mcuforge.compress.pipeline import STEPS, CompressResult, Recipe, compress, measure, parse_recipe

__all__ = ["STEPS", "CompressResult", "Recipe", "compress", "measure", "parse_recipe"]
