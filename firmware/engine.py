"""The C engine from Python: host build, ctypes binding, and the `mcuforge engine` library functions.

The engine's C sources under runtime/ are compiled once per content into a
cached shared library (mcuforge.hostbuild). Status names, op names and
type names come from the C library itself, so Python never keeps a second copy.

    >>> with Engine(Path("model.tflite").read_bytes()) as engine:    # doctest: +SKIP
    ...     outputs = engine.invoke([x])
"""

from __future__ import annotations

import ctypes
import hashlib
import json
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from mcuforge.errors import MCUForgeError
from mcuforge.hostbuild import FIRMWARE_DIR, SANITIZE_FLAGS, build_shared_library

RUNTIME_DIR = FIRMWARE_DIR / "runtime"
MF_OK = 0
MF_ERR_ARENA_TOO_SMALL = 6
# A first arena for a model of unknown needs; the engine reports the exact figure.
DEFAULT_ARENA_BYTES = 1 << 20
_NUMPY_TYPES = {0: np.float32, 2: np.int32, 3: np.uint8, 4: np.int64, 6: np.bool_, 7: np.int16, 9: np.int8}


class Fault(ctypes.Structure):
    _fields_ = [
        ("op_index", ctypes.c_int32),
        ("tensor_index", ctypes.c_int32),
        ("name", ctypes.c_char_p),
        ("arena_needed", ctypes.c_size_t),
    ]


class _TensorInfo(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("dims", ctypes.POINTER(ctypes.c_int32)),
        ("rank", ctypes.c_int32),
        ("type", ctypes.c_int),
        ("scale", ctypes.c_float),
        ("zero_point", ctypes.c_int32),
        ("bytes", ctypes.c_size_t),
    ]


KERNELS_DIR = RUNTIME_DIR / "kernels"
# Kernel sets: "portable" (the reference, every core) and "dsp" (kernels/dsp/,
# for cores with the DSP extension: each file replaces the portable one of the
# same name; on the host it runs with C stand-ins for the SIMD instructions).
KERNEL_SETS = ("portable", "dsp")


def runtime_sources(kernels: str = "portable") -> list[Path]:
    """Every C file of the engine (core and kernels) with the kernel set `kernels`."""
    if kernels not in KERNEL_SETS:
        raise MCUForgeError(f"unknown kernel set {kernels!r}: choose one of {', '.join(KERNEL_SETS)}")
    variants = {p.name: p for p in (KERNELS_DIR / kernels).glob("*.c")}
    portable = (p for p in RUNTIME_DIR.rglob("*.c") if p.parent.parent != KERNELS_DIR)
    return sorted(variants.get(p.name, p) if p.parent == KERNELS_DIR else p for p in portable)


def shadowed_kernel_source(source: Path) -> Path:
    """The portable kernel file a kernel-set file replaces (and includes)."""
    return KERNELS_DIR / source.name


def build_library(sanitize: bool = False, extra_sources: tuple[Path, ...] = (), kernels: str = "portable") -> Path:
    """The engine as a host shared library; `sanitize` adds ASan and UBSan."""
    flags = ("-O1", "-g", *SANITIZE_FLAGS) if sanitize else ("-O2",)
    name = "mfengine_asan" if sanitize else "mfengine"
    if kernels != "portable":
        # Variant files #include the portable file they replace: its bytes are part of the cache key.
        shadowed = b"".join(shadowed_kernel_source(p).read_bytes() for p in sorted((KERNELS_DIR / kernels).glob("*.c")))
        name += f"_{kernels}_{hashlib.sha256(shadowed).hexdigest()[:8]}"
    return build_shared_library(name, [*runtime_sources(kernels), *extra_sources], [RUNTIME_DIR], flags)


@lru_cache(maxsize=None)
def library(kernels: str = "portable") -> ctypes.CDLL:
    """The loaded host engine with its function signatures declared."""
    lib = ctypes.CDLL(str(build_library(kernels=kernels)))
    lib.mf_load.argtypes = [
        ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t,
        ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(Fault),
    ]
    lib.mf_load.restype = ctypes.c_int
    lib.mf_invoke.argtypes = [ctypes.c_void_p]
    lib.mf_invoke.restype = ctypes.c_int
    for name in ("mf_input_count", "mf_output_count", "mf_arena_used"):
        getattr(lib, name).argtypes = [ctypes.c_void_p]
        getattr(lib, name).restype = ctypes.c_size_t
    for name in ("mf_input", "mf_output"):
        getattr(lib, name).argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(_TensorInfo)]
        getattr(lib, name).restype = ctypes.c_int
    for name in ("mf_status_name", "mf_op_name", "mf_type_name"):
        getattr(lib, name).argtypes = [ctypes.c_int32]
        getattr(lib, name).restype = ctypes.c_char_p
    lib.mf_prepare_image.argtypes = [
        ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint32, ctypes.c_void_p, ctypes.c_size_t,
        ctypes.POINTER(ctypes.c_size_t), ctypes.POINTER(Fault),
    ]
    lib.mf_prepare_image.restype = ctypes.c_int
    lib.mf_prepared_eval_list.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t]
    lib.mf_prepared_eval_list.restype = ctypes.c_size_t
    declare_prepared_runner(lib)
    return lib


def declare_prepared_runner(lib: ctypes.CDLL) -> None:
    """Signatures of the prepared-model runner (mf_prepared.h) in a host library that links it."""
    lib.mf_prepared_open.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    lib.mf_prepared_open.restype = ctypes.c_int
    lib.mf_prepared_invoke.argtypes = [ctypes.c_void_p]
    lib.mf_prepared_invoke.restype = ctypes.c_int
    for name in ("mf_prepared_input_count", "mf_prepared_output_count"):
        getattr(lib, name).argtypes = [ctypes.c_void_p]
        getattr(lib, name).restype = ctypes.c_size_t
    for name in ("mf_prepared_input", "mf_prepared_output"):
        getattr(lib, name).argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(_TensorInfo)]
        getattr(lib, name).restype = ctypes.c_int
    lib.mf_prepared_arena_bytes.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    lib.mf_prepared_arena_bytes.restype = ctypes.c_size_t


def status_name(status: int) -> str:
    return library().mf_status_name(status).decode()


def op_name(code: int) -> str:
    return library().mf_op_name(code).decode()


def type_name(code: int) -> str:
    return library().mf_type_name(code).decode()


class EngineError(MCUForgeError):
    """The engine refused a model or failed to run it; `status` is the C status name."""

    def __init__(self, message: str, status: str, fault_name: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.fault_name = fault_name


def aligned_copy(data: bytes, alignment: int = 16) -> tuple[ctypes.Array, int]:
    """`data` in a ctypes buffer at an `alignment`-byte boundary (the engine needs 8)."""
    buffer = ctypes.create_string_buffer(len(data) + alignment)
    address = ctypes.addressof(buffer)
    pad = (-address) % alignment
    ctypes.memmove(address + pad, data, len(data))
    return buffer, address + pad


class Engine:
    """One model loaded into the host engine with its own arena."""

    # The C API a loaded model is driven through (a prepared image has its own).
    _api = {"input_count": "mf_input_count", "input": "mf_input", "invoke": "mf_invoke",
            "output_count": "mf_output_count", "output": "mf_output"}

    def __init__(self, model: bytes, arena_bytes: int | None = None, source: str = "model", kernels: str = "portable") -> None:
        self._lib = library(kernels)
        self.source = source
        self._model_buffer, self._model_address = aligned_copy(bytes(model))
        self._model_size = len(model)
        size = arena_bytes or DEFAULT_ARENA_BYTES
        status, fault = self._load(size)
        # Without a given arena, grow to what the engine asks for (its state, its planning records, then the
        # plan: each step can only ask for more, so this ends).
        while status == MF_ERR_ARENA_TOO_SMALL and arena_bytes is None and fault.arena_needed > size:
            size = fault.arena_needed
            status, fault = self._load(size)
        if status != MF_OK:
            raise self._load_error(status, fault, size)

    def _load(self, arena_bytes: int) -> tuple[int, Fault]:
        self._arena = (ctypes.c_uint8 * arena_bytes)()
        self._handle = ctypes.c_void_p()
        fault = Fault()
        status = self._lib.mf_load(
            self._model_address, self._model_size, ctypes.addressof(self._arena), arena_bytes,
            ctypes.byref(self._handle), ctypes.byref(fault),
        )
        return status, fault

    def _load_error(self, status: int, fault: Fault, arena_bytes: int) -> EngineError:
        name = status_name(status)
        what = (fault.name or b"").decode()
        where = f" at operator {fault.op_index}{self._op_label(fault.op_index)}" if fault.op_index >= 0 else ""
        if name == "MF_ERR_UNSUPPORTED_OP":
            message = f"the mcuforge engine has no kernel for op {what}{where} of {self.source}: replace that layer or run the model in TFLM"
        elif name == "MF_ERR_UNSUPPORTED_TYPE":
            message = f"the mcuforge engine cannot run tensor type {what}{where} of {self.source}: convert the model to int8 (full-integer quantization)"
        elif name == "MF_ERR_UNSUPPORTED_PARAM":
            message = f"the mcuforge engine does not implement the options or quantization{where} of {self.source}: change that layer or run the model in TFLM"
        elif name == "MF_ERR_ARENA_TOO_SMALL":
            message = f"{self.source} needs an arena of {fault.arena_needed} bytes, got {arena_bytes}: give a larger arena"
        else:
            message = f"the mcuforge engine cannot load {self.source}{where}: {name}; check the file is a valid int8 .tflite"
        return EngineError(message, name, what)

    def _op_label(self, index: int) -> str:
        """' (ADD)' for operator `index`, so refusals name the op; '' when the file does not parse that far."""
        from mcuforge.deploy.tflite_model import parse_tflite

        try:
            model = parse_tflite(ctypes.string_at(self._model_address, self._model_size), self.source)
            return f" ({model.main.operators[index].opcode})"
        except (MCUForgeError, IndexError):
            return ""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._handle = ctypes.c_void_p()

    @property
    def arena_used(self) -> int:
        return int(self._lib.mf_arena_used(self._handle))

    def _info(self, getter, index: int) -> _TensorInfo:
        info = _TensorInfo()
        status = getter(self._handle, index, ctypes.byref(info))
        if status != MF_OK:
            raise EngineError(f"tensor {index} of {self.source}: {status_name(status)}", status_name(status))
        return info

    def _spec(self, info: _TensorInfo) -> tuple[tuple[int, ...], np.dtype]:
        dtype = _NUMPY_TYPES.get(info.type)
        if dtype is None:
            raise EngineError(f"{self.source} has an I/O tensor of type {type_name(info.type)}", "MF_ERR_UNSUPPORTED_TYPE")
        return tuple(info.dims[i] for i in range(info.rank)), np.dtype(dtype)

    def _c(self, role: str):
        return getattr(self._lib, self._api[role])

    def input_specs(self) -> list[tuple[tuple[int, ...], np.dtype]]:
        return [self._spec(self._info(self._c("input"), i)) for i in range(self._c("input_count")(self._handle))]

    def invoke(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """Run once on `inputs` (one array per model input, exact shape and dtype); returns copies of every output."""
        count = self._c("input_count")(self._handle)
        if len(inputs) != count:
            raise MCUForgeError(f"{self.source} takes {count} inputs, got {len(inputs)}")
        for index, array in enumerate(inputs):
            info = self._info(self._c("input"), index)
            shape, dtype = self._spec(info)
            array = np.ascontiguousarray(array)
            if array.dtype != dtype or array.size != int(np.prod(shape)):
                raise MCUForgeError(
                    f"input {index} of {self.source} is {dtype} {list(shape)}, got {array.dtype} {list(array.shape)}"
                )
            ctypes.memmove(info.data, array.ctypes.data, info.bytes)
        status = self._c("invoke")(self._handle)
        if status != MF_OK:
            raise EngineError(f"the mcuforge engine failed to run {self.source}: {status_name(status)}", status_name(status))
        outputs = []
        for index in range(self._c("output_count")(self._handle)):
            info = self._info(self._c("output"), index)
            shape, dtype = self._spec(info)
            raw = ctypes.string_at(info.data, info.bytes)
            outputs.append(np.frombuffer(raw, dtype=dtype).reshape(shape).copy())
        return outputs


@dataclass(frozen=True)
class EngineStats:
    """What `mcuforge engine stats` reports, in bytes.

    tflm_arena_*: TFLM's RecordingMicroAllocator on this 64-bit host; its
    activations (head) are the same on a 32-bit target, its persistent part
    (tail) is larger here because its pointers are 8 bytes.
    """

    model: str
    engine_arena: int
    tflm_arena_total: int
    tflm_arena_head: int
    tflm_arena_tail: int
    ops: list[str]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def model_stats(model_path: Path | str) -> EngineStats:
    """Arena of our engine and of TFLM for the same model, and its op list."""
    from mcuforge.deploy.tflite_model import read_tflite
    from mcuforge.deploy.tflm import Emulator

    model_path = Path(model_path)
    if not model_path.is_file():
        raise MCUForgeError(f"model not found: {model_path}")
    data = model_path.read_bytes()
    model = read_tflite(model_path)
    with Engine(data, source=str(model_path)) as engine:
        ours = engine.arena_used
    tflm = Emulator(model, data).arena_usage()
    ops = [op.opcode for op in model.main.operators]
    return EngineStats(str(model_path), ours, tflm.total, tflm.head, tflm.tail, ops)


@dataclass(frozen=True)
class RunResult:
    outputs: np.ndarray  # output 0, one row per sample, as the engine produced it
    output_path: Path | None


def run_model(model_path: Path | str, inputs: np.ndarray | Path | str, output_path: Path | str | None = None) -> RunResult:
    """Run every sample of `inputs` through the engine one by one, as `mcuforge emulate` does in TFLM.

    Integer inputs must have the model's input dtype; float inputs are quantized
    with its scale and zero point; a leading batch axis is run sample by sample.
    """
    from mcuforge.deploy.emulate import load_array, save_array
    from mcuforge.deploy.tflite_model import read_tflite
    from mcuforge.deploy.tflm import prepare_input

    model_path = Path(model_path)
    if not model_path.is_file():
        raise MCUForgeError(f"model not found: {model_path}")
    model = read_tflite(model_path)
    array = load_array(inputs) if isinstance(inputs, (str, Path)) else np.asarray(inputs)
    tensor = model.main.input_tensors[0]
    batch = prepare_input(array, tensor)
    with Engine(model_path.read_bytes(), source=str(model_path)) as engine:
        results = [engine.invoke([sample.reshape(tensor.shape)])[0] for sample in batch]
    raw = np.concatenate(results)
    saved = save_array(output_path, raw) if output_path is not None else None
    return RunResult(raw, saved)


FUZZ_SOURCE = FIRMWARE_DIR / "fuzz" / "mf_fuzz.c"
# Run in a child process: the sanitizer runtime must be preloaded before Python starts.
_FUZZ_CHILD = r"""
import ctypes, json, sys
class Stats(ctypes.Structure):
    _fields_ = [("iterations", ctypes.c_uint32), ("loaded", ctypes.c_uint32), ("invoked", ctypes.c_uint32)]
lib = ctypes.CDLL(sys.argv[1])
seed, iterations, seconds, arena = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
blobs = [open(p, "rb").read() for p in sys.argv[6:]]
models = (ctypes.c_char_p * len(blobs))(*blobs)
sizes = (ctypes.c_size_t * len(blobs))(*map(len, blobs))
stats = Stats()
lib.mf_fuzz_run.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32, ctypes.c_uint32,
                            ctypes.c_double, ctypes.c_size_t, ctypes.POINTER(Stats)]
if lib.mf_fuzz_run(models, sizes, len(blobs), seed, iterations, seconds, arena, ctypes.byref(stats)) != 0:
    sys.exit("fuzz setup failed")
print(json.dumps({"iterations": stats.iterations, "loaded": stats.loaded, "invoked": stats.invoked}))
"""


@dataclass(frozen=True)
class FuzzResult:
    iterations: int  # mutants tried (the first len(models) are the unmutated seeds)
    loaded: int  # mutants the loader accepted
    invoked: int  # ...that then ran to MF_OK


def fuzz(model_paths: list[Path], seconds: float, seed: int = 1, iterations: int = 1 << 30, arena_bytes: int = 1 << 18) -> FuzzResult:
    """Mutation-fuzz the loader and interpreter in the ASan+UBSan build, in a child process.

    Raises MCUForgeError with the sanitizer report when the child crashes.
    Longer campaigns: `fuzz(paths, seconds=3600, seed=n)` for several seeds.
    """
    import os
    import subprocess
    import sys

    library_path = build_library(sanitize=True, extra_sources=(FUZZ_SOURCE,))
    compiler = os.environ.get("CC", "cc")
    asan = subprocess.run([compiler, "-print-file-name=libasan.so"], capture_output=True, text=True).stdout.strip()
    env = dict(os.environ, LD_PRELOAD=asan, ASAN_OPTIONS="detect_leaks=0:abort_on_error=1", UBSAN_OPTIONS="print_stacktrace=1")
    args = [sys.executable, "-c", _FUZZ_CHILD, str(library_path), str(seed), str(iterations), str(seconds), str(arena_bytes)]
    result = subprocess.run([*args, *map(str, model_paths)], capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise MCUForgeError(f"fuzzing crashed the engine (seed {seed}):\n{result.stderr[-4000:]}")
    return FuzzResult(**json.loads(result.stdout.strip().splitlines()[-1]))
