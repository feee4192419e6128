import os
import sys
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
