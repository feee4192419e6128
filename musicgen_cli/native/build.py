"""Compiling the CPU kernels (the C++ in the repository's top-level kernels/ folder).

Standard library only: the package build (setup.py) runs this to ship a prebuilt library in the
wheel (or next to the sources in an editable install), and cpu.py runs it at run time when no
verified prebuilt library is there. A library is used only with its stamp, written after a
successful build: the digest of the sources and flags it was built from and the SHA-256 of the
file itself, so a stale, truncated or foreign library is rebuilt instead of loaded.
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
FLAGS = ("-O3", "-std=c++17", "-mavx2", "-mfma", "-ffp-contract=off", "-fopenmp", "-shared", "-fPIC")
PREBUILT = HERE / "_cpu_kernels.so"  # where the package build puts the library


def source_dir() -> Path:
    """The kernels' sources: copied into the package by a wheel build, or the checkout's kernels/."""
    packaged = HERE / "src"
    return packaged if packaged.is_dir() else HERE.parents[1] / "kernels"


def source_digest(sources: Path | None = None) -> str:
    sources = sources or source_dir()
    digest = hashlib.sha256(" ".join(FLAGS).encode())
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


def compile_library(target: Path, sources: Path | None = None, compiler: str | None = None) -> None:
    """Build the library at `target` (through a temporary file and a rename), then its stamp.
    Raises RuntimeError with the compiler's last line when the build fails."""
    sources = sources or source_dir()
    compiler = compiler or find_compiler()
    if not compiler:
        raise RuntimeError("no C++ compiler found (install g++, or set CXX)")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        done = subprocess.run([compiler, *FLAGS, f"-I{sources}", *(str(sources / u) for u in UNITS), "-o", tmp],
                              capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
            raise RuntimeError(f"building the CPU kernels failed: {last}")
        os.chmod(tmp, 0o755)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    stamp = {"sources": source_digest(sources), "sha256": _file_digest(target)}
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
