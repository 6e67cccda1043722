"""Runs a model in Larq Compute Engine's own interpreter: the oracle for LCE's custom ops.

Executed by `mcuforge.deploy.lce` in the side environment `make setup` creates
(`.venv-lce`: NumPy 1.x and nothing else), because LCE's interpreter extension is
built against NumPy 1.x while the main environment has NumPy 2. The extension is
loaded straight from its file in the main environment's LCE install, skipping
LCE's package init (which imports TensorFlow). Standard library and NumPy only.

    python lce_oracle.py <interpreter_wrapper_lite.so> <model.tflite> <inputs.npz> <outputs.npz> [reference]

inputs.npz holds arr_0, arr_1, ... (one array per model input, each with a leading
samples axis before the input's own shape); outputs.npz gets one array per model
output, the samples stacked the same way. Samples run one at a time.
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
    extension, model_path, inputs_path, outputs_path = argv[:4]
    reference_bconv = argv[4:] == ["reference"]
    wrapper = load_interpreter_module(extension)
    with open(model_path, "rb") as f:
        model = f.read()
    # num_threads=1, LCE's defaults (optimized bconv unless `reference`, no indirect BGEMM, no XNNPack).
    interpreter = wrapper.LiteInterpreter(model, 1, reference_bconv, False, False)
    with np.load(inputs_path) as data:
        inputs = [data[f"arr_{i}"] for i in range(len(data.files))]
    results = [interpreter.predict([array[n] for array in inputs]) for n in range(len(inputs[0]))]
    np.savez(outputs_path, *[np.stack([np.asarray(r[i]) for r in results]) for i in range(len(results[0]))])


if __name__ == "__main__":
    main(sys.argv[1:])
