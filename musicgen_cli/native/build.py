"""Compiling the CPU kernels (the C++ in the repository's top-level kernels/ folder).

Standard library only: the package build (setup.py) runs this to ship a prebuilt library in the
wheel (or next to the sources in an editable install), and cpu.py runs it at run time when no
verified prebuilt library is there. A library is used only with its stamp, written after a
successful build: the digest of the sources and flags it was built from and the SHA-256 of the
file itself, so a stale, truncated or foreign library is rebuilt instead of loaded.

The library has two builds (ISAS): for AVX2 + FMA, and for AVX-512 with VNNI and BF16, whose
int8 and bf16 products use the byte and bf16 dot-product instructions (kernels/gemv.h).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
UNITS = ("decode_step.cpp", "sampler.cpp")  # compiled together into one library
HEADERS = ("gemv.h", "vecmath.h", "philox.h")
CUDA_SOURCES = ("sampler.cu",)  # compiled at run time by NVRTC (cuda.py)
BASE_FLAGS = ("-O3", "-std=c++17", "-ffp-contract=off", "-fopenmp", "-shared", "-fPIC")
# each build's compiler flags, and the /proc/cpuinfo flags a CPU needs to run it (best build last)
ISAS = {
    "avx2": (("-mavx2", "-mfma"), ("avx2", "fma")),
    "avx512": (("-mavx2", "-mfma", "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512vnni", "-mavx512bf16"),
               ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16")),
}


def flags(isa: str = "avx2") -> tuple[str, ...]:
    return (*BASE_FLAGS, *ISAS[isa][0])


FLAGS = flags("avx2")


def prebuilt(isa: str = "avx2") -> Path:
    """Where the package build puts the library built for `isa`."""
    return HERE / f"_cpu_kernels_{isa}.so"


def source_dir() -> Path:
    """The kernels' sources: copied into the package by a wheel build, or the checkout's kernels/."""
    packaged = HERE / "src"
    return packaged if packaged.is_dir() else HERE.parents[1] / "kernels"


def source_digest(sources: Path | None = None, isa: str = "avx2") -> str:
    sources = sources or source_dir()
    digest = hashlib.sha256(" ".join(flags(isa)).encode())
    for name in (*UNITS, *HEADERS):
        digest.update((sources / name).read_bytes())
    return digest.hexdigest()[:16]


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _stamp(library: Path) -> Path:
    return library.with_name(library.name + ".json")


def verified(library: Path, sources: str) -> bool:
    """Whether `library` was built from the sources with digest `sources` and is intact since."""
    try:
        stamp = json.loads(_stamp(library).read_text())
        return stamp.get("sources") == sources and stamp.get("sha256") == _file_digest(library)
    except (OSError, ValueError, AttributeError):
        return False


def find_compiler() -> str | None:
    return os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")


def compile_library(target: Path, sources: Path | None = None, compiler: str | None = None, isa: str = "avx2") -> None:
    """Build the library for `isa` at `target` (through a temporary file and a rename), then its stamp.
    Raises RuntimeError with the compiler's last line when the build fails."""
    sources = sources or source_dir()
    compiler = compiler or find_compiler()
    if not compiler:
        raise RuntimeError("no C++ compiler found (install g++, or set CXX)")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        done = subprocess.run([compiler, *flags(isa), f"-I{sources}", *(str(sources / u) for u in UNITS), "-o", tmp],
                              capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
            raise RuntimeError(f"building the CPU kernels failed: {last}")
        os.chmod(tmp, 0o755)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    stamp = {"sources": source_digest(sources, isa), "sha256": _file_digest(target)}
    write_atomic(_stamp(target), json.dumps(stamp).encode())


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file and a rename: never half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def copy_sources(folder: Path) -> None:
    """Put the kernels' sources where source_dir() finds them in an installed wheel."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in (*UNITS, *HEADERS, *CUDA_SOURCES):
        shutil.copyfile(source_dir() / name, folder / name)
