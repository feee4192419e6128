"""Item 1 of issue 16: a damaged or foreign cached kernel library is never loaded (it crashed every
later run with SIGBUS/SIGSEGV); the run falls back with one line, and the sidecar names the backend
that really ran."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from musicgen_cli.native import build, cpu


@pytest.fixture(scope="module")
def built_library(tmp_path_factory):
    """A good library and stamp for the current sources (copied from the cache, else built)."""
    try:
        _, good = cpu.locate("avx2")
    except cpu.KernelUnavailable as e:
        pytest.skip(f"no CPU kernels here: {e}")
    return good


def checkout_copy(tmp_path) -> Path:
    """The package and the kernels' sources, copied: its libraries can be damaged without harm."""
    root = Path(__file__).parents[1]
    copy = tmp_path / "checkout"
    shutil.copytree(root / "musicgen_cli", copy / "musicgen_cli", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(root / "kernels", copy / "kernels")
    return copy


def damage(path: Path, how: str) -> None:
    if how == "truncate":
        os.truncate(path, 20000)
    else:
        path.write_bytes(b"\xcc" * path.stat().st_size)  # int3 everywhere: SIGTRAP if ever run


@pytest.mark.parametrize("how", ["truncate", "overwrite"])
def test_damaged_cached_library_falls_back_with_one_line(built_library, mono_ckpt, tmp_path, how):
    """Both places a library is loaded from damaged (the prebuilt one in the package, and the
    cache), and no compiler to build a new one: one warning line, PyTorch runs, and says so."""
    checkout = checkout_copy(tmp_path)
    cache = tmp_path / "cache"
    target = cache / "kernels" / f"cpu-avx2-{build.source_digest()}.so"
    target.parent.mkdir(parents=True)
    shutil.copyfile(built_library, target)
    shutil.copyfile(built_library.with_name(built_library.name + ".json"), target.with_name(target.name + ".json"))
    for library in [target, *(checkout / "musicgen_cli" / "native" / build.prebuilt(isa).name for isa in build.ISAS)]:
        if library.exists():
            damage(library, how)
    out = tmp_path / "a.wav"
    env = {**os.environ, "MUSICGEN_CACHE": str(cache), "CXX": "/bin/false", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": str(checkout), "MUSICGEN_CPU_ISA": "avx2"}
    done = subprocess.run([sys.executable, "-m", "musicgen_cli", "generate", "x", "-m", str(mono_ckpt), "-d", "0.5",
                           "--backend", "cpu", "--dtype", "int8", "-o", str(out)],
                          capture_output=True, text=True, env=env, timeout=300, cwd=checkout)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("CPU fast path unavailable, using PyTorch: building the CPU kernels failed") == 1, done.stderr
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["backend"] == "cpu-pytorch" and sidecar["dtype"] == "int8"


AVX512 = {"avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16"}


def test_the_best_build_the_cpu_runs(monkeypatch):
    """AVX-512 (VNNI and BF16) before AVX2 where /proc/cpuinfo lists them; MUSICGEN_CPU_ISA picks one
    the CPU runs, and a CPU without AVX2 and FMA gets none."""
    monkeypatch.delenv("MUSICGEN_CPU_ISA", raising=False)
    monkeypatch.setattr(cpu, "cpu_flags", lambda: AVX512)
    assert cpu.isas() == ["avx512", "avx2"]
    monkeypatch.setattr(cpu, "cpu_flags", lambda: AVX512 - {"avx512_bf16"})
    assert cpu.isas() == ["avx2"]
    monkeypatch.setenv("MUSICGEN_CPU_ISA", "avx512")
    with pytest.raises(cpu.KernelUnavailable, match="MUSICGEN_CPU_ISA=avx512: this CPU runs avx2"):
        cpu.isas()
    monkeypatch.setattr(cpu, "cpu_flags", lambda: AVX512)
    assert cpu.isas() == ["avx512"]
    monkeypatch.setenv("MUSICGEN_CPU_ISA", "avx2")
    assert cpu.isas() == ["avx2"]
    monkeypatch.delenv("MUSICGEN_CPU_ISA")
    monkeypatch.setattr(cpu, "cpu_flags", lambda: {"sse2", "avx"})
    with pytest.raises(cpu.KernelUnavailable, match="need AVX2 and FMA"):
        cpu.isas()


def test_a_failed_avx512_build_falls_back_to_avx2(built_library, tmp_path, monkeypatch):
    """A compiler that cannot build the AVX-512 library (too old): the AVX2 one is used."""
    monkeypatch.delenv("MUSICGEN_CPU_ISA", raising=False)
    monkeypatch.setenv("MUSICGEN_CACHE", str(tmp_path))
    monkeypatch.setattr(cpu, "cpu_flags", lambda: AVX512)
    target = cpu.cache_dir() / f"cpu-avx2-{build.source_digest(isa='avx2')}.so"
    target.parent.mkdir(parents=True)
    shutil.copyfile(built_library, target)
    shutil.copyfile(built_library.with_name(built_library.name + ".json"), target.with_name(target.name + ".json"))
    tried = []

    def old_compiler(target, sources=None, compiler=None, isa="avx2"):
        tried.append(isa)
        raise RuntimeError("building the CPU kernels failed: unrecognized command-line option '-mavx512bf16'")

    monkeypatch.setattr(build, "compile_library", old_compiler)
    monkeypatch.setattr(build, "prebuilt", lambda isa: tmp_path / "none.so")
    assert cpu.locate() == ("avx2", target) and tried == ["avx512"]
