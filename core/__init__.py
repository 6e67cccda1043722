"""mcuforge: a TinyML deployment pipeline (train -> compress -> deploy -> firmware).

tfmot only works with the Keras 2 API, so the whole project uses `tf_keras`.
TensorFlow reads TF_USE_LEGACY_KERAS when it is first imported; every module of
the project lives under this package, so setting it here, once, comes first.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
