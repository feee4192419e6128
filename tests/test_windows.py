"""Long pieces: every window continues from the frames kept from the one before it.

With greedy decoding a window is a pure function of its prompt frames (and, for melody models, of
the melody from its own point in time), so each window of a long piece must equal a fresh
one-window generation given the kept frames as its prompt. A window that started from anything
else (zeros, the wrong frames, the piece's first frames) would differ.
"""

import json
import shutil

import pytest
import torch

from musicgen_cli import MusicGen, SamplingOptions, chroma
from musicgen_cli.generation import plan_windows

WINDOW = 100  # frames: a 2 s window (generation_config's max_length), so windows are quick
STRIDE = 1.0  # seconds: each window keeps the last 50 frames and adds 50
GREEDY = SamplingOptions(top_k=1)  # guided (cfg 3) argmax
PROMPTS = ["a", "bb"]


def short_window(folder, tmp_path_factory):
    """A copy of a tiny checkpoint whose generation_config says max_length = WINDOW frames."""
    copy = tmp_path_factory.mktemp("short-window") / "ckpt"
    shutil.copytree(folder, copy)
    config = copy / "generation_config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "max_length": WINDOW}))
    return copy


@pytest.fixture(scope="module")
def short_mono(mono_ckpt, tmp_path_factory):
    return short_window(mono_ckpt, tmp_path_factory)


@pytest.fixture(scope="module")
def short_melody(melody_ckpt, tmp_path_factory):
    return short_window(melody_ckpt, tmp_path_factory)


def fresh(mg, kept: torch.Tensor, frames: int, melody=None) -> torch.Tensor:
    """One window, from scratch, given `kept` codes [B, K, P] as its prompt (P may be 0)."""
    if kept.shape[2] == 0:
        return mg.generate_codes(PROMPTS, frames / mg.frame_rate, GREEDY, melody=melody)
    encode = mg.codec.encode
    mg.codec.encode = lambda audio, num_codebooks: kept  # the prompt is exactly these frames
    try:
        stand_in = torch.zeros(kept.shape[0], mg.channels, 640)  # what encode would have read
        return mg.generate_codes(PROMPTS, frames / mg.frame_rate, GREEDY, audio=stand_in, melody=melody)
    finally:
        mg.codec.encode = encode


def assert_windows_continue(mg, piece: torch.Tensor, prompt_frames: int, melody=None) -> None:
    """Each window of `piece` [B, K, frames] equals a fresh generation from the frames it kept."""
    plan = plan_windows(piece.shape[2], prompt_frames, WINDOW, round(STRIDE * mg.frame_rate))
    assert len(plan) >= 3
    end = 0  # frames of the piece made so far
    for i, w in enumerate(plan):
        start = end - w.prompt if i else 0
        kept = piece[:, :, start : start + w.prompt]
        moved = None
        if melody is not None:  # the window hears the melody from its own first frame on
            moved = torch.roll(melody, -round(start / mg.frame_rate * chroma.SAMPLE_RATE), dims=1)
        want = fresh(mg, kept, w.total, moved)
        assert torch.equal(piece[:, :, start : start + w.total], want), f"window {i} (frames {start}..)"
        end = start + w.total
    assert end == piece.shape[2]


@pytest.mark.parametrize("backend", ["torch", "cpu"])  # the reference, and the fast path at float32
def test_generate_windows_continue(short_mono, backend):
    mg = MusicGen.load(str(short_mono), device="cpu", backend=backend, dtype="float32")
    assert mg.max_duration == WINDOW / mg.frame_rate
    piece = mg.generate_codes(PROMPTS, 4.0, GREEDY, stride=STRIDE)  # windows: 100, +50, +50
    assert_windows_continue(mg, piece, 0)


@pytest.mark.parametrize("backend", ["torch", "cpu"])
def test_continue_windows_continue(short_mono, backend):
    mg = MusicGen.load(str(short_mono), device="cpu", backend=backend, dtype="float32")
    t = torch.arange(round(0.6 * mg.sample_rate)) / mg.sample_rate  # 30 frames of two tones
    audio = 0.3 * torch.stack([torch.sin(2 * torch.pi * f * t) for f in (220.0, 330.0)])[:, None]
    piece = mg.generate_codes(PROMPTS, 4.0, GREEDY, stride=STRIDE, audio=audio)  # 30 + 70, +50, +50
    first = mg.codec.encode(audio, mg.lm.cfg.num_codebooks)
    assert torch.equal(piece[:, :, :30], first)
    assert_windows_continue(mg, piece, 30)


@pytest.mark.parametrize("backend", ["torch", "cpu"])
def test_melody_windows_continue(short_melody, backend):
    mg = MusicGen.load(str(short_melody), device="cpu", backend=backend, dtype="float32")
    t = torch.arange(3 * chroma.SAMPLE_RATE) / chroma.SAMPLE_RATE  # 3 s: windows start mid-tune
    pitch = torch.where(t < 1.5, 261.63, 392.0)[None] * torch.tensor([[1.0], [1.26]])
    melody = (0.5 * torch.sin(2 * torch.pi * pitch * t)).float()
    piece = mg.generate_codes(PROMPTS, 4.0, GREEDY, stride=STRIDE, melody=melody)
    assert_windows_continue(mg, piece, 0, melody)
