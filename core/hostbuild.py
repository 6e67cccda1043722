"""Build the project's C sources into a host shared library, once per source content.

The C files ship inside the package (as data of mcuforge.firmware), so
`pip install .` users get the same engine and feature extractor the tests
exercise; a library is compiled on first use and cached under a directory keyed
by a hash of the sources and flags, so a change rebuilds it. This lives in the
package root because training (the feature extractor) and the firmware both
build C for the host, and neither stage may import the other.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from mcuforge.artifacts import cache_root
from mcuforge.errors import MCUForgeError

# Where the C sources are: the firmware package's folder, found without importing the package.
FIRMWARE_DIR = Path(importlib.util.find_spec("mcuforge.firmware").submodule_search_locations[0]).resolve()
# -ffp-contract=off: a * b + c stays a rounded product then a rounded sum (no FMA), as in TFLM's float
# reference kernels, so float32 outputs match bit for bit on the host and on Cortex-M4F/M7/M33/M55 alike.
STRICT_C_FLAGS = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-ffp-contract=off")
SANITIZE_FLAGS = ("-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=all")


def cache_dir() -> Path:
    """Where host builds live."""
    return cache_root() / "host"


def build_shared_library(
    name: str,
    sources: list[Path],
    include_dirs: list[Path] = (),
    extra_flags: tuple[str, ...] = ("-O2",),
) -> Path:
    """Compile `sources` into lib<name>.so with the project's strict C99 flags.

    Returns the library path. Raises MCUForgeError naming the compiler output
    when the build fails, so users see the C error rather than a ctypes one.
    """
    compiler = os.environ.get("CC", "cc")
    if shutil.which(compiler) is None:
        raise MCUForgeError(f"C compiler '{compiler}' not found: install gcc (apt-get install gcc) or set CC.")
    flags = [*STRICT_C_FLAGS, *extra_flags, "-fPIC", "-shared"]
    digest = hashlib.sha256()
    for part in [compiler, *flags, *map(str, include_dirs)]:
        digest.update(part.encode())
    for src in sorted(sources):
        digest.update(Path(src).read_bytes())
    for inc in include_dirs:
        for header in sorted(Path(inc).rglob("*.h")):
            digest.update(header.read_bytes())
    out_dir = cache_dir() / f"{name}-{digest.hexdigest()[:16]}"
    library = out_dir / f"lib{name}.so"
    if library.exists():
        return library
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=out_dir, suffix=".so", delete=False) as tmp:
        tmp_path = Path(tmp.name)
    cmd = [compiler, *flags, *(f"-I{d}" for d in include_dirs), *map(str, sources), "-o", str(tmp_path), "-lm"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        tmp_path.unlink(missing_ok=True)
        raise MCUForgeError(f"building host library {name} failed:\n{result.stderr.strip()}")
    os.replace(tmp_path, library)
    return library
