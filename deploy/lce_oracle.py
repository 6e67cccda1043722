"""Runs a model in Larq Compute Engine's own interpreter: the oracle for LCE's custom ops.

Executed by `mcuforge.deploy.lce` in the side environment `make setup` creates
(`.venv-lce`: NumPy 1.x and nothing else), because LCE's interpreter extension is
built against NumPy 1.x while the main environment has NumPy 2. The extension is
loaded straight from its file in the main environment's LCE install, skipping
LCE's package init (which imports TensorFlow). Standard library and NumPy only.

    python lce_oracle.py <interpreter_wrapper_lite.so> <model.tflite> <inputs.npz> <outputs.npz>

inputs.npz holds arr_0, arr_1, ... (one array per model input, batch included);
outputs.npz gets one array per model output, in the same naming.
"""

import importlib.util
import sys

import numpy as np


def load_interpreter_module(path):
    """The compiled `interpreter_wrapper_lite` module at `path`, without importing its package."""
    spec = importlib.util.spec_from_file_location("interpreter_wrapper_lite", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv):
    extension, model_path, inputs_path, outputs_path = argv
    wrapper = load_interpreter_module(extension)
    with open(model_path, "rb") as f:
        model = f.read()
    # num_threads=1, LCE's defaults for the kernel choice (optimized bconv, no XNNPack).
    interpreter = wrapper.LiteInterpreter(model, 1, False, False, False)
    with np.load(inputs_path) as data:
        inputs = [data[f"arr_{i}"] for i in range(len(data.files))]
    outputs = interpreter.predict(inputs)
    np.savez(outputs_path, *[np.asarray(o) for o in outputs])


if __name__ == "__main__":
    main(sys.argv[1:])
