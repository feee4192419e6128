"""Item 1 of issue 16: a damaged or foreign cached kernel library is never loaded (it crashed every
later run with SIGBUS/SIGSEGV): it is rebuilt with the real compiler, and the next run loads the
rebuilt one; without a compiler the run falls back with one line. The sidecar names the backend that
really ran. Caches live under the test's own temporary folder, never the user's."""

import _ctypes
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
    elif how == "foreign":  # a real shared library, but not ours
        shutil.copyfile(_ctypes.__file__, path)
    else:
        path.write_bytes(b"\xcc" * path.stat().st_size)  # int3 everywhere: SIGTRAP if ever run


def generate(checkout: Path, ckpt, out: Path, **env) -> subprocess.CompletedProcess:
    env = {**{k: v for k, v in os.environ.items() if k not in ("MUSICGEN_CACHE", "CXX")}, "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": str(checkout), **env}
    return subprocess.run([sys.executable, "-m", "musicgen_cli", "generate", "x", "-m", str(ckpt), "-d", "0.5",
                           "--backend", "cpu", "--dtype", "int8", "-o", str(out)],
                          capture_output=True, text=True, env=env, timeout=300, cwd=checkout)


def warning_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "warning" in line.lower()]


@pytest.mark.parametrize("how", ["truncate", "foreign"])
def test_damaged_cached_library_is_rebuilt_then_reused(built_library, mono_ckpt, tmp_path, how):
    """The cache (under XDG_CACHE_HOME) holds a damaged or foreign library with our name and the
    stamp of a good build: one line says it was rebuilt, the real compiler rebuilds it, the fast path
    runs; the next run loads the rebuilt library without building (no compiler then)."""
    checkout = checkout_copy(tmp_path)
    for isa in build.ISAS:  # the cache it is
        (checkout / "musicgen_cli" / "native" / build.prebuilt(isa).name).unlink(missing_ok=True)
    digest = build.source_digest(isa="avx2")
    target = tmp_path / "xdg" / "musicgen" / "kernels" / f"cpu-avx2-{digest}.so"
    target.parent.mkdir(parents=True)
    shutil.copyfile(built_library, target)
    shutil.copyfile(built_library.with_name(built_library.name + ".json"), target.with_name(target.name + ".json"))
    damage(target, how)
    damaged = target.read_bytes()
    first = generate(checkout, mono_ckpt, tmp_path / "a.wav", XDG_CACHE_HOME=str(tmp_path / "xdg"),
                     MUSICGEN_CPU_ISA="avx2")
    assert first.returncode == 0, first.stderr
    said = warning_lines(first.stderr)
    assert said == [f"musicgen: warning: {target} did not match its stamp (damaged, or not ours); rebuilt it"], first.stderr
    assert json.loads((tmp_path / "a.json").read_text())["backend"] == "cpu"
    assert build.verified(target, digest) and target.read_bytes() != damaged
    built = target.stat()

    second = generate(checkout, mono_ckpt, tmp_path / "b.wav", XDG_CACHE_HOME=str(tmp_path / "xdg"), CXX="/bin/false",
                      MUSICGEN_CPU_ISA="avx2")
    assert second.returncode == 0 and warning_lines(second.stderr) == [], second.stderr
    assert json.loads((tmp_path / "b.json").read_text())["backend"] == "cpu"
    assert (target.stat().st_ino, target.stat().st_mtime_ns) == (built.st_ino, built.st_mtime_ns)
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".")]  # no temp file of the build left


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
    done = generate(checkout, mono_ckpt, out, MUSICGEN_CACHE=str(cache), CXX="/bin/false", MUSICGEN_CPU_ISA="avx2")
    assert done.returncode == 0, done.stderr
    said = warning_lines(done.stderr)
    assert len(said) == 1 and said[0].startswith("musicgen: warning: CPU fast path unavailable, using PyTorch: "), done.stderr
    assert said[0].endswith(f"{target} did not match its stamp (damaged, or not ours); building the CPU kernels failed: (no message)")
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
