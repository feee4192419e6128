"""In CI only GPU / nvcc tests may skip (tests/conftest.py fails the run otherwise)."""

from types import SimpleNamespace

from conftest import forbidden


def report(nodeid: str, reason: str, xfail: bool = False):
    r = SimpleNamespace(nodeid=nodeid, skipped=True, longrepr=("file.py", 3, f"Skipped: {reason}"))
    if xfail:
        r.wasxfail = reason
    return r


def test_only_gpu_and_nvcc_skips_are_allowed():
    reports = [report("a", "FluidSynth or the GM soundfont is not installed"),
               report("b", "no CUDA GPU on this machine: the CUDA path is not run"),
               report("c", "no nvcc here to check that the CUDA sampler compiles"),
               report("d", "the CPU kernels cannot be built here (see the warning)"),
               report("e", "expected to fail until the new bundled model lands", xfail=True),
               SimpleNamespace(nodeid="f", skipped=False, longrepr=None)]
    assert [nodeid for nodeid, _ in forbidden(reports)] == ["a", "d"]
