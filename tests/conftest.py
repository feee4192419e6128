import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from tiny_checkpoints import make_hf_checkpoint  # noqa: E402

# Tiny models: one intra-op thread. With two on this 2-core machine, torch's workers spin whenever
# another process is busy, and tiny-model tests slow down 10-100x. Subprocesses inherit this too.
torch.set_num_threads(1)
os.environ["OMP_NUM_THREADS"] = "1"
# Tests never touch the internet: the default model falls back to the bundled one at once
# (the hub tests point HF_ENDPOINT at a local server and lift this in their own processes).
os.environ["HF_HUB_OFFLINE"] = "1"
# The Ctrl-C tests signal real processes. A suite started in the background by a shell without job
# control (`cmd &` in a script) inherits SIGINT ignored, and so would every musicgen it starts (an
# ignored signal stays ignored across exec): handled here, it reaches them as at a terminal.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def mono_ckpt(tmp_path_factory) -> Path:
    return make_hf_checkpoint(tmp_path_factory.mktemp("mono"), seed=1)


@pytest.fixture(scope="session")
def stereo_ckpt(tmp_path_factory) -> Path:
    return make_hf_checkpoint(tmp_path_factory.mktemp("stereo"), stereo=True, seed=2)


@pytest.fixture(params=["mono", "stereo"])
def ckpt(request, mono_ckpt, stereo_ckpt) -> Path:
    return mono_ckpt if request.param == "mono" else stereo_ckpt


@pytest.fixture(scope="session")
def melody_ckpt(tmp_path_factory) -> Path:
    return make_hf_checkpoint(tmp_path_factory.mktemp("melody"), melody=True, seed=3)


@pytest.fixture(scope="session")
def stereo_melody_ckpt(tmp_path_factory) -> Path:
    return make_hf_checkpoint(tmp_path_factory.mktemp("stereo-melody"), melody=True, stereo=True, seed=4)


# In CI nothing may be skipped except what needs a GPU or nvcc (.ci/run installs everything else):
# a skip for a missing FluidSynth, soundfont or compiler would otherwise end green, the tests behind
# it never run. Locally skips stay skips.
GPU_ONLY_SKIPS = ("no CUDA GPU", "no nvcc")
_forbidden_skips: list[tuple[str, str]] = []


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return reason.removeprefix("Skipped: ")


def forbidden(reports) -> Iterator[tuple[str, str]]:
    """(test, reason) of each skip that is not an expected failure and does not need a GPU or nvcc."""
    for report in reports:
        if report.skipped and not hasattr(report, "wasxfail"):
            reason = _skip_reason(report)
            if not reason.startswith(GPU_ONLY_SKIPS):
                yield report.nodeid, reason


def pytest_runtest_logreport(report):
    if os.environ.get("CI") == "true":
        _forbidden_skips.extend(forbidden([report]))


def pytest_terminal_summary(terminalreporter):
    if _forbidden_skips:
        terminalreporter.section("skips not allowed in CI (only GPU / nvcc tests may skip)", red=True)
        for nodeid, reason in _forbidden_skips:
            terminalreporter.line(f"{nodeid}: {reason}")


def pytest_sessionfinish(session, exitstatus):
    if _forbidden_skips and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
