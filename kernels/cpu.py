"""The CPU kernels (decode_step.cpp, gemv.h, sampler.cpp): built once with the system's C++ compiler, cached, loaded by ctypes.

`library()` returns the loaded library, or None after one warning line when it cannot be had
(no compiler, not an x86-64 CPU with AVX2 and FMA, a failed build); callers then use PyTorch.
The build lives in ~/.cache/musicgen/kernels (or $MUSICGEN_CACHE/kernels), named by a hash of
the sources and flags, written to a temporary file and renamed, so a crash never leaves half a
library behind and a changed source builds anew.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import warnings
from pathlib import Path

import torch

from musicgen_cli.audio import atomic_target
from musicgen_cli.errors import MusicgenError

HERE = Path(__file__).parent
UNITS = [HERE / "decode_step.cpp", HERE / "sampler.cpp"]  # compiled together into one library
SOURCES = [*UNITS, HERE / "gemv.h", HERE / "vecmath.h", HERE / "philox.h"]
FLAGS = ["-O3", "-std=c++17", "-mavx2", "-mfma", "-ffp-contract=off", "-fopenmp", "-shared", "-fPIC"]


CHUNK = {"float32": 8, "bfloat16": 16, "int8": 32}  # the input width must be a multiple of this


class KernelUnavailable(RuntimeError):
    pass


def cache_dir() -> Path:
    root = os.environ.get("MUSICGEN_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "musicgen")
    return Path(root) / "kernels"


def _cpu_supported() -> None:
    if platform.machine().lower() not in ("x86_64", "amd64"):
        raise KernelUnavailable(f"the CPU kernels need an x86-64 CPU (this is {platform.machine()})")
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError as e:
        raise KernelUnavailable("cannot read /proc/cpuinfo to check for AVX2 and FMA") from e
    if "avx2" not in flags or "fma" not in flags:
        raise KernelUnavailable("the CPU kernels need AVX2 and FMA, which this CPU lacks")


def build() -> Path:
    """Compile the kernels (or find it already compiled) and return the shared library's path."""
    if os.environ.get("MUSICGEN_NO_CPU_KERNELS"):
        raise KernelUnavailable("MUSICGEN_NO_CPU_KERNELS is set")
    _cpu_supported()
    compiler = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    if not compiler:
        raise KernelUnavailable("no C++ compiler found (install g++, or set CXX)")
    digest = hashlib.sha256(" ".join([compiler, *FLAGS]).encode())
    for source in SOURCES:
        digest.update(source.read_bytes())
    target = cache_dir() / f"cpu-{digest.hexdigest()[:16]}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_target(target) as tmp:
        done = subprocess.run([compiler, *FLAGS, f"-I{HERE}", *map(str, UNITS), "-o", tmp],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise KernelUnavailable(f"building the CPU kernels failed: {done.stderr.strip().splitlines()[-1:]}")
    return target


P, I, F, U64 = ctypes.c_void_p, ctypes.c_int, ctypes.c_float, ctypes.c_uint64
SIGNATURES = {
    "mg_linear_f32": [P, I, I, P, I, P],
    "mg_linear_bf16": [P, I, I, P, I, P],
    "mg_linear_i8": [P, I, I, P, P, I, P],
    "mg_sample": [P, I, I, I, I, F, F, I, F, I, U64, U64, P, P, I, I],
    "mg_step": [I, P, P, F, P, I, P],
}


@functools.lru_cache(maxsize=None)
def library() -> ctypes.CDLL | None:
    try:  # torch (imported above) has loaded its OpenMP runtime, which the library then shares
        lib = ctypes.CDLL(str(build()))
    except (KernelUnavailable, MusicgenError, OSError) as e:  # MusicgenError: the cache cannot be written
        warnings.warn(f"CPU fast path unavailable, using PyTorch: {e}", stacklevel=2)
        return None
    for name, args in SIGNATURES.items():
        fn = getattr(lib, name)
        fn.argtypes = args
        fn.restype = None if name == "mg_sample" else ctypes.c_int
    return lib


def linear(lib: ctypes.CDLL, x: torch.Tensor, weight: torch.Tensor, scale: torch.Tensor | None) -> torch.Tensor:
    """x [..., K] fp32 times weight [N, K] (fp32, bf16, or int8 with scale [N]) -> [..., N] fp32."""
    x2 = x.reshape(-1, x.shape[-1]).contiguous()
    m, k = x2.shape
    n = weight.shape[0]
    y = torch.empty(m, n, dtype=torch.float32)
    if weight.dtype == torch.int8:
        err = lib.mg_linear_i8(x2.data_ptr(), m, k, weight.data_ptr(), scale.data_ptr(), n, y.data_ptr())
    elif weight.dtype == torch.bfloat16:
        err = lib.mg_linear_bf16(x2.data_ptr(), m, k, weight.data_ptr(), n, y.data_ptr())
    else:
        err = lib.mg_linear_f32(x2.data_ptr(), m, k, weight.data_ptr(), n, y.data_ptr())
    if err:
        raise ValueError(f"the CPU kernels need the input width to be a multiple of 8 (got {k})")
    return y.view(*x.shape[:-1], n)
