"""Our chroma against transformers' MusicgenMelodyFeatureExtractor on the same audio.

The extractor is what melody checkpoints' inputs are made with on the Hugging Face side (the
chroma audiocraft trained them on): its filter bank, padding of short clips, framing,
max-normalisation and one-hot argmax are taken as they are. It needs torchaudio only for
`torchaudio.transforms.Spectrogram`; no torchaudio release on PyPI matches our torch (2.11 is the
newest and pins an older torch), so when torchaudio is missing that one transform is stood in by
its definition in torchaudio.functional.spectrogram: torch.stft with a periodic Hann window,
centred, reflect-padded, divided by the window's L2 norm ("normalized=True"), squared magnitude.
"""

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import transformers.models.musicgen_melody as musicgen_melody

from musicgen_cli import chroma as ch
from musicgen_cli import melody_eval

SR = ch.SAMPLE_RATE


class Spectrogram:
    """torchaudio.transforms.Spectrogram(n_fft, win_length, hop_length, power, center, pad=0, normalized)."""

    def __init__(self, n_fft, win_length, hop_length, power, center, pad, normalized):
        assert pad == 0 and normalized is True
        self.n_fft, self.hop, self.power, self.center = n_fft, hop_length, power, center
        self.window = torch.hann_window(win_length)  # torchaudio's default window_fn (periodic)

    def __call__(self, wav: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(wav.reshape(-1, wav.shape[-1]), self.n_fft, self.hop, window=self.window, center=self.center,
                          pad_mode="reflect", normalized=False, onesided=True, return_complex=True)
        spec = spec / self.window.pow(2.0).sum().sqrt()
        return spec.abs().pow(self.power).reshape(wav.shape[:-1] + spec.shape[-2:])


@pytest.fixture(scope="module")
def extractor():
    """transformers' own class, from its own source file (its package hands out a placeholder without torchaudio)."""
    if importlib.util.find_spec("torchaudio") is not None:
        return musicgen_melody.MusicgenMelodyFeatureExtractor()
    source = Path(musicgen_melody.__path__[0]) / "feature_extraction_musicgen_melody.py"
    spec = importlib.util.spec_from_file_location(f"{musicgen_melody.__name__}._extractor_under_test", source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.torchaudio = SimpleNamespace(transforms=SimpleNamespace(Spectrogram=Spectrogram))
    return module.MusicgenMelodyFeatureExtractor()


def signals():
    gen = torch.Generator().manual_seed(0)
    t = torch.arange(4 * SR) / SR
    chords = sum(0.2 * torch.sin(2 * torch.pi * f * t) for f in (196.0, 246.9, 293.7)) \
        * (1 + 0.5 * torch.sin(2 * torch.pi * 0.7 * t))
    return {
        "tune": melody_eval.test_melody(12.0),
        "tune, transposed": melody_eval.test_melody(6.5, bpm=137, transpose=5),
        "chords": chords.float(),
        "noise": 0.1 * torch.randn(3 * SR + 777, generator=gen),
        "short": 0.5 * torch.sin(2 * torch.pi * 523.25 * t[: int(0.3 * SR)]).float(),  # under one FFT window
    }


@pytest.mark.parametrize("name", list(signals()))
def test_same_chroma_as_transformers(extractor, name):
    wav = signals()[name]
    theirs = extractor(wav.numpy(), sampling_rate=SR, return_tensors="pt")["input_features"]
    ours = ch.chroma(wav)
    assert ours.shape == theirs.shape
    assert torch.equal(ours, theirs), f"{int((ours != theirs).any(-1).sum())} of {ours.shape[1]} frames differ"


def test_same_chroma_as_transformers_batched(extractor):
    tunes = torch.stack([melody_eval.test_melody(5.0), melody_eval.test_melody(5.0, bpm=80, transpose=3)])
    theirs = extractor(list(tunes.numpy()), sampling_rate=SR, return_tensors="pt")["input_features"]
    assert torch.equal(ch.chroma(tunes), theirs)
    assert np.unique(theirs[0].argmax(-1)).size >= 4  # a tune, not one held pitch class
