"""The CPU kernels (kernels/decode_step.cpp, gemv.h, sampler.cpp), loaded by ctypes.

`library()` returns the loaded library, or None after one warning line when it cannot be had (not
an x86-64 CPU with AVX2 and FMA, no prebuilt library and no compiler, a failed build); callers
then use PyTorch. Of its builds (build.ISAS) it loads the best one this CPU runs: AVX-512 with
VNNI and BF16 where /proc/cpuinfo lists them, else AVX2 ($MUSICGEN_CPU_ISA=avx2 chooses AVX2
anyway). The package build ships the library prebuilt (build.py, run by setup.py); when that one
is missing or does not match the sources, it is built once into ~/.cache/musicgen/kernels (or
$MUSICGEN_CACHE/kernels). Either is loaded only when its stamp verifies (build.py).
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform
import warnings
from pathlib import Path

import torch

from . import build

CHUNK = {"float32": 8, "bfloat16": 16, "int8": 32}  # the input width must be a multiple of this


class KernelUnavailable(RuntimeError):
    pass


def cache_dir() -> Path:
    """$MUSICGEN_CACHE/kernels, else $XDG_CACHE_HOME/musicgen/kernels, else ~/.cache/musicgen/kernels."""
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    root = os.environ.get("MUSICGEN_CACHE") or os.path.join(xdg, "musicgen")
    return Path(root) / "kernels"


def cpu_flags() -> set[str]:
    if platform.machine().lower() not in ("x86_64", "amd64"):
        raise KernelUnavailable(f"the CPU kernels need an x86-64 CPU (this is {platform.machine()})")
    try:
        return set(Path("/proc/cpuinfo").read_text().split())
    except OSError as e:
        raise KernelUnavailable("cannot read /proc/cpuinfo to check for AVX2 and FMA") from e


def isas() -> list[str]:
    """The library's builds this CPU runs, best first ($MUSICGEN_CPU_ISA: only that one)."""
    flags = cpu_flags()
    runs = [isa for isa, (_, needs) in reversed(build.ISAS.items()) if flags.issuperset(needs)]
    if not runs:
        raise KernelUnavailable("the CPU kernels need AVX2 and FMA, which this CPU lacks")
    chosen = os.environ.get("MUSICGEN_CPU_ISA")
    if chosen:
        if chosen not in runs:
            raise KernelUnavailable(f"MUSICGEN_CPU_ISA={chosen}: this CPU runs {' or '.join(runs)}")
        return [chosen]
    return runs


def locate(isa: str | None = None) -> tuple[str, Path]:
    """The build and the verified library for `isa` (None: the best this CPU runs that can be had):
    the prebuilt one, else the cached build (built now if need be)."""
    if os.environ.get("MUSICGEN_NO_CPU_KERNELS"):
        raise KernelUnavailable("MUSICGEN_NO_CPU_KERNELS is set")
    error = None
    for choice in [isa] if isa else isas():
        digest = build.source_digest(isa=choice)
        if build.verified(build.prebuilt(choice), digest):
            return choice, build.prebuilt(choice)
        target = cache_dir() / f"cpu-{choice}-{digest}.so"
        if build.verified(target, digest):
            return choice, target
        # missing, or damaged or foreign (its name is ours): build it anew
        damaged = f"{target} did not match its stamp (damaged, or not ours); " if target.exists() else ""
        try:
            build.compile_library(target, isa=choice)
        except (RuntimeError, OSError) as e:  # a compiler too old for AVX-512 still builds AVX2
            error = error or KernelUnavailable(f"{damaged}{e}")
            continue
        if damaged:
            warnings.warn(f"{damaged}rebuilt it", stacklevel=2)
        return choice, target
    raise error


P, I, F, U64 = ctypes.c_void_p, ctypes.c_int, ctypes.c_float, ctypes.c_uint64
SIGNATURES = {
    "mg_linear_f32": [P, I, I, P, I, P],
    "mg_linear_bf16": [P, I, I, P, I, P],
    "mg_linear_i8": [P, I, I, P, P, I, P],
    "mg_sample": [P, I, I, I, I, F, F, I, F, I, P, U64, P, P, I, I],
    "mg_step": [I, P, P, F, P, I, P],
}


def library(isa: str | None = None) -> ctypes.CDLL | None:
    """The library built for `isa` (None: the best this CPU runs; its `isa` says which); loaded
    once, warned once."""
    return _library(isa)


@functools.lru_cache(maxsize=None)
def _library(isa: str | None) -> ctypes.CDLL | None:
    try:  # torch (imported above) has loaded its OpenMP runtime, which the library then shares
        isa, path = locate(isa)
        lib = ctypes.CDLL(str(path))
        lib.isa = isa
        for name, args in SIGNATURES.items():
            fn = getattr(lib, name)
            fn.argtypes = args
            fn.restype = ctypes.c_int
    except (KernelUnavailable, OSError, AttributeError) as e:
        warnings.warn(f"CPU fast path unavailable, using PyTorch: {e}", stacklevel=2)
        return None
    return lib


def linear(lib: ctypes.CDLL, x: torch.Tensor, weight: torch.Tensor, scale: torch.Tensor | None) -> torch.Tensor:
    """x [..., K] fp32 times weight [N, K] (fp32, bf16, or int8 with its scales [N, blocks] from
    fast_lm.quantise_blocks) -> [..., N] fp32."""
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
