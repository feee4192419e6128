import numpy as np
import pytest
import torch
from transformers.audio_utils import chroma_filter_bank

from musicgen_cli import chroma as ch

SR, N_FFT, HOP = 32000, 16384, 4096
NOTES = {"C": 0, "C#": 1, "D": 2, "D#": 3, "E": 4, "F": 5, "F#": 6, "G": 7, "G#": 8, "A": 9, "A#": 10, "B": 11}


def _midi_hz(midi: int) -> float:
    return 440.0 * 2 ** ((midi - 69) / 12)


def _melody(midis, seconds=1.0, amplitude=0.5) -> torch.Tensor:
    """Pure tones one after another, at 32 kHz, float32 [T]."""
    t = np.arange(int(seconds * SR)) / SR
    return torch.from_numpy(np.concatenate([amplitude * np.sin(2 * np.pi * _midi_hz(m) * t) for m in midis])).float()


def _reference_normalized(wav: np.ndarray) -> np.ndarray:
    """Independent numpy chroma (before the argmax): [B, frames, 12], float64."""
    wav = np.atleast_2d(wav).astype(np.float64)
    if wav.shape[-1] < N_FFT:
        pad = N_FFT - wav.shape[-1]
        wav = np.pad(wav, ((0, 0), (pad // 2, pad - pad // 2)))
    padded = np.pad(wav, ((0, 0), (N_FFT // 2, N_FFT // 2)), mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT, axis=-1)[:, ::HOP]  # [B, frames, N_FFT]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)  # periodic Hann
    power = np.abs(np.fft.rfft(frames * window, axis=-1)) ** 2 / np.sum(window**2)
    bank = chroma_filter_bank(sampling_rate=SR, num_frequency_bins=N_FFT, tuning=0, num_chroma=12)
    raw = power @ bank.T
    return raw / np.maximum(np.abs(raw).max(-1, keepdims=True), 1e-6)


def _signals():
    gen = torch.Generator().manual_seed(0)
    t = torch.arange(3 * SR) / SR
    sines = 0.3 * torch.sin(2 * torch.pi * 311.1 * t) + 0.2 * torch.sin(2 * torch.pi * 1046.5 * t) \
        + 0.1 * torch.sin(2 * torch.pi * 98.0 * t)
    return {
        "noise": 0.1 * torch.randn(2 * SR + 123, generator=gen),
        "sines": sines,
        "short": 0.2 * torch.randn(int(0.3 * SR), generator=gen) + 0.5 * torch.sin(2 * torch.pi * 660 * t[: int(0.3 * SR)]),
        "batch": torch.stack([_melody([69, 72])[: 2 * SR], 0.1 * torch.randn(2 * SR, generator=gen)]),
    }


@pytest.mark.parametrize("name", ["noise", "sines", "short", "batch"])
def test_matches_numpy_reference(name):
    wav = _signals()[name]
    ref = _reference_normalized(wav.double().numpy())
    norm = ch._normalized_chroma(wav)
    assert norm.dtype == torch.float32 and norm.shape == ref.shape
    np.testing.assert_allclose(norm.numpy(), ref, rtol=1e-4, atol=1e-5)
    one_hot = ch.chroma(wav)
    assert one_hot.dtype == torch.float32
    np.testing.assert_array_equal(one_hot.numpy(), np.eye(12)[ref.argmax(-1)])
    expected_frames = 1 + max(wav.shape[-1], N_FFT) // HOP
    assert one_hot.shape == (ref.shape[0], expected_frames, 12)


def test_filter_bank_shape_and_cache():
    bank = ch._filter_bank(SR, N_FFT, 12)
    assert bank.shape == (12, N_FFT // 2 + 1) and bank.dtype == torch.float32
    assert ch._filter_bank(SR, N_FFT, 12) is bank


def test_melody_pitch_classes():
    names = ["A", "C", "E", "G"]
    wav = _melody([69, 72, 76, 67])  # A4, C5, E5, G4, 1 s each
    argmax = ch.chroma(wav)[0].argmax(-1)
    for i, name in enumerate(names):
        # frames whose whole 0.512 s window lies inside note i (1 s long, starting at i s)
        inside = [f for f in range(argmax.shape[0]) if i * SR + N_FFT // 2 <= f * HOP <= (i + 1) * SR - N_FFT // 2]
        assert len(inside) >= 3
        assert argmax[inside].tolist() == [NOTES[name]] * len(inside), name


def test_thirty_seconds_gives_235_frames():
    wav = torch.zeros(2, 30 * SR)
    wav[:, ::97] = 0.01
    assert ch.chroma(wav).shape == (2, 235, 12)


def test_fit_length_tiles_and_cuts():
    seq = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(2, 3, 4)
    out = ch.fit_length(seq, 8)
    assert out.shape == (2, 8, 4)
    assert torch.equal(out, seq[:, [0, 1, 2, 0, 1, 2, 0, 1]])
    assert torch.equal(ch.fit_length(seq, 2), seq[:, :2])
    assert torch.equal(ch.fit_length(seq, 3), seq)


def test_null_chroma():
    null = ch.null_chroma(3, 5)
    assert null.shape == (3, 5, 12)
    assert torch.equal(null[..., 0], torch.ones(3, 5)) and null[..., 1:].abs().sum() == 0


def test_is_silent():
    from musicgen_cli.audio import is_silent

    assert is_silent(torch.zeros(SR))
    assert is_silent(torch.full((2, 100), 5e-5))
    assert not is_silent(_melody([69], seconds=0.1))


def test_cosine_similarity():
    melody = _melody([69, 72, 76, 67, 71, 74])
    up = _melody([70, 73, 77, 68, 72, 75])  # every note a semitone higher
    noisy = melody + 0.01 * torch.randn(melody.shape, generator=torch.Generator().manual_seed(1))
    assert ch.cosine_similarity(melody, melody) == pytest.approx(1.0)
    assert ch.cosine_similarity(melody, up) < 0.2
    assert ch.cosine_similarity(melody, noisy) > 0.9
    # batched, and cut to the shorter input
    assert ch.cosine_similarity(torch.stack([melody, melody]), torch.stack([melody, up])[:, : 5 * SR]) \
        == pytest.approx(0.5 * (1.0 + ch.cosine_similarity(melody[: 5 * SR], up)), abs=1e-6)
