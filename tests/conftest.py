import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from tiny_checkpoints import make_hf_checkpoint  # noqa: E402


@pytest.fixture(scope="session")
def mono_ckpt(tmp_path_factory) -> Path:
    return make_hf_checkpoint(tmp_path_factory.mktemp("mono"), seed=1)


@pytest.fixture(scope="session")
def stereo_ckpt(tmp_path_factory) -> Path:
    return make_hf_checkpoint(tmp_path_factory.mktemp("stereo"), stereo=True, seed=2)


@pytest.fixture(params=["mono", "stereo"])
def ckpt(request, mono_ckpt, stereo_ckpt) -> Path:
    return mono_ckpt if request.param == "mono" else stereo_ckpt
