"""Item 1 of issue 16: a damaged or foreign cached kernel library is never loaded (it crashed every
later run with SIGBUS/SIGSEGV); the run falls back with one line, and the sidecar names the backend
that really ran."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from musicgen_cli.native import build, cpu


@pytest.fixture(scope="module")
def built_library(tmp_path_factory):
    """A good library and stamp for the current sources (copied from the cache, else built)."""
    try:
        good = cpu.locate()
    except cpu.KernelUnavailable as e:
        pytest.skip(f"no CPU kernels here: {e}")
    return good


@pytest.mark.parametrize("damage", ["truncate", "overwrite"])
def test_damaged_cached_library_falls_back_with_one_line(built_library, mono_ckpt, tmp_path, damage):
    cache = tmp_path / "cache"
    target = cache / "kernels" / f"cpu-{build.source_digest()}.so"
    target.parent.mkdir(parents=True)
    shutil.copyfile(built_library, target)
    shutil.copyfile(built_library.with_name(built_library.name + ".json"), target.with_name(target.name + ".json"))
    if damage == "truncate":
        os.truncate(target, 20000)
    else:
        target.write_bytes(b"\xcc" * target.stat().st_size)  # int3 everywhere: SIGTRAP if ever run
    out = tmp_path / "a.wav"
    env = {**os.environ, "MUSICGEN_CACHE": str(cache), "CXX": "/bin/false", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "musicgen_cli", "generate", "x", "-m", str(mono_ckpt), "-d", "0.5",
                           "--backend", "cpu", "--dtype", "int8", "-o", str(out)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("CPU fast path unavailable, using PyTorch: building the CPU kernels failed") == 1, done.stderr
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["backend"] == "cpu-pytorch" and sidecar["dtype"] == "int8"
