"""Run a .tflite on a Coral Edge TPU through libedgetpu, or on the CPU with a notice.

Standalone on purpose: `mcuforge edgetpu run --target coral-devboard` copies this
file to the board beside the model, where mcuforge is not installed. It needs
numpy and either ai-edge-litert or tflite-runtime (what Coral's Mendel ships).
It prints one JSON object on stdout (device, outputs, latency); notices go to
stderr; exit status 2 with a one-line message on errors.

    python3 edgetpu_runner.py model_edgetpu.tflite --cpu-model model.tflite --input x.npy
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time

import numpy as np

EDGETPU_LIBRARY = {"Linux": "libedgetpu.so.1", "Darwin": "libedgetpu.1.dylib", "Windows": "edgetpu.dll"}
EDGETPU_CUSTOM_OP = b"edgetpu-custom-op"  # what edgetpu_compiler puts in place of the ops it maps


class RunnerError(Exception):
    """An error the runner reports on one line (the caller shows it to the user)."""


def _interpreter_module():
    try:
        from ai_edge_litert import interpreter
    except ImportError:
        try:
            from tflite_runtime import interpreter
        except ImportError:
            raise RunnerError("neither ai-edge-litert nor tflite-runtime is installed: pip install ai-edge-litert") from None
    return interpreter


def load_interpreter(model_path: str, cpu_model_path: str | None = None, library: str | None = None, require_edgetpu: bool = False):
    """Return (interpreter, device, notice): the Edge TPU delegate when libedgetpu loads, else the CPU.

    A compiled model's Edge TPU custom op cannot run on the CPU, so the CPU
    fallback runs `cpu_model_path` (the model before edgetpu_compiler) instead.
    """
    module = _interpreter_module()
    library = library or EDGETPU_LIBRARY.get(platform.system(), EDGETPU_LIBRARY["Linux"])
    try:
        delegate = module.load_delegate(library)
    except (OSError, ValueError, RuntimeError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if require_edgetpu:
            raise RunnerError(f"cannot load the Edge TPU delegate {library}: {reason}") from None
        with open(model_path, "rb") as fh:
            compiled = EDGETPU_CUSTOM_OP in fh.read()
        if compiled and cpu_model_path is None:
            raise RunnerError(
                f"{model_path} is compiled for the Edge TPU and {library} cannot be loaded ({reason}): "
                "pass --cpu-model with the model before edgetpu_compiler to run on the CPU"
            ) from None
        chosen = cpu_model_path if compiled else model_path
        notice = f"notice: Edge TPU delegate {library} not loaded ({reason}); running {chosen} on the CPU instead"
        return module.Interpreter(model_path=chosen), "cpu", notice
    return module.Interpreter(model_path=model_path, experimental_delegates=[delegate]), "edgetpu", None


def run(model_path: str, cpu_model_path: str | None = None, input_path: str | None = None, library: str | None = None,
        require_edgetpu: bool = False, repeats: int = 1) -> dict:  # fmt: skip
    """Invoke the model `repeats` times on the input (a .npy, else zeros); returns the JSON-ready result."""
    interpreter, device, notice = load_interpreter(model_path, cpu_model_path, library, require_edgetpu)
    interpreter.allocate_tensors()
    (detail,) = interpreter.get_input_details()
    if input_path is None:
        x = np.zeros(detail["shape"], dtype=detail["dtype"])
    else:
        try:
            x = np.load(input_path)
        except (OSError, ValueError) as exc:
            raise RunnerError(f"{input_path} is not a numpy .npy array ({exc})") from None
        if x.dtype != detail["dtype"] or tuple(x.shape) != tuple(detail["shape"]):
            raise RunnerError(
                f"input {input_path} is {x.dtype} {list(x.shape)}; the model expects {np.dtype(detail['dtype'])} {detail['shape'].tolist()}"
            )
    latencies = []
    for _ in range(max(1, repeats)):
        interpreter.set_tensor(detail["index"], x)
        start = time.perf_counter()
        interpreter.invoke()
        latencies.append((time.perf_counter() - start) * 1e3)
    outputs = [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]
    return {
        "device": device,
        "notice": notice,
        "outputs": [o.tolist() for o in outputs],
        "output_dtypes": [str(o.dtype) for o in outputs],
        "latency_ms": float(np.median(latencies)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--cpu-model", help="the model before edgetpu_compiler, run when libedgetpu is missing")
    parser.add_argument("--input", help=".npy input of the model's input dtype and shape (default: zeros)")
    parser.add_argument("--library", help="the libedgetpu to load (default: the platform's libedgetpu)")
    parser.add_argument("--require-edgetpu", action="store_true", help="fail instead of falling back to the CPU")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args(argv)
    try:
        result = run(args.model, args.cpu_model, args.input, args.library, args.require_edgetpu, args.repeats)
    except (RunnerError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if result["notice"]:
        print(result["notice"], file=sys.stderr)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
