"""Item 3 of issue 16: the CPU sampler and products built with AddressSanitizer and
UndefinedBehaviorSanitizer, run on edge cases (all-NaN logits read past the kept tokens before);
and the products and decode step of each build (issue 14).
Runs in CI with the rest of the tests; skips where the compiler has no sanitizer runtime."""

import os
import subprocess
from pathlib import Path

import pytest

from musicgen_cli.native import build, cpu

HERE = Path(__file__).parent


def sanitized_run(tmp_path, source: str, isa: str = "avx2") -> subprocess.CompletedProcess:
    """tests/native/`source` built with the library's sources for `isa` under the sanitizers, and run."""
    compiler = build.find_compiler()
    if compiler is None:
        pytest.skip("no C++ compiler")
    sources = build.source_dir()
    flags = [f for f in build.flags(isa) if f not in ("-O3", "-shared", "-fPIC")]
    exe = tmp_path / "sanitized"
    done = subprocess.run([compiler, "-O1", "-g", *flags, "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
                           f"-I{sources}", str(HERE / "native" / source),
                           *(str(sources / u) for u in build.UNITS), "-o", str(exe)], capture_output=True, text=True)
    if done.returncode != 0:
        if "asan" in done.stderr or "ubsan" in done.stderr:
            pytest.skip(f"no sanitizer runtime: {done.stderr.strip().splitlines()[-1]}")
        raise AssertionError(done.stderr)
    env = {**os.environ, "ASAN_OPTIONS": "detect_leaks=0", "UBSAN_OPTIONS": "print_stacktrace=1"}
    return subprocess.run([str(exe)], capture_output=True, text=True, env=env, timeout=300)


def test_sampler_edge_cases_under_sanitizers(tmp_path):
    run = sanitized_run(tmp_path, "sanitized_sampler.cpp")
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    assert "all NaN: 1" in run.stdout and "runtime error" not in run.stderr


@pytest.mark.parametrize("isa", cpu.isas() if cpu.library() is not None else ["avx2"])
def test_products_and_steps_under_sanitizers(tmp_path, isa):
    """Each build of the products and the decode step this CPU runs (AVX-512 where it has it)."""
    run = sanitized_run(tmp_path, "sanitized_products.cpp", isa)
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    assert "step dtype=2 cache=1 length=9: 0" in run.stdout and "runtime error" not in run.stderr
