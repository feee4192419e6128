"""Chroma features for melody conditioning, and the chroma cosine-similarity metric.

Matches transformers' ``MusicgenMelodyFeatureExtractor`` and audiocraft's
``ChromaExtractor(argmax=True, radix2_exp=14)``: a torchaudio-style power spectrogram
(periodic Hann, centred with reflect padding, "window"-normalised) projected onto a
librosa chroma filter bank, normalised per frame by its maximum, then one-hot at the argmax.
"""

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F

from .audio import resample

SAMPLE_RATE = 32000
N_FFT = 16384  # 2 ** 14, audiocraft's radix2_exp=14
HOP = N_FFT // 4
NUM_CHROMA = 12


@functools.lru_cache(maxsize=8)
def _filter_bank(sample_rate: int, n_fft: int, num_chroma: int) -> torch.Tensor:
    """[num_chroma, n_fft // 2 + 1] float32 chroma filter bank; row 0 is pitch class C.

    librosa's chroma filters (tuning 0, A440): each FFT bin is a Gaussian bump over the chroma
    bins around its pitch (width: the bin's spacing in chroma bins, at least 1; the DC bin is placed
    1.5 octaves below bin 1), each column normalised to unit L2 norm, then weighted by a Gaussian
    over octaves centred at octave 5 (of A440 / 16 = 27.5 Hz) with half-width 2."""
    freqs = np.arange(1, n_fft) * (sample_rate / n_fft)
    pitch = num_chroma * np.log2(freqs / (440.0 / 16))  # in chroma bins above A0
    pitch = np.concatenate(([pitch[0] - 1.5 * num_chroma], pitch))
    width = np.concatenate((np.maximum(np.diff(pitch), 1.0), [1.0]))
    half = np.round(num_chroma / 2)
    offset = np.remainder(pitch[None, :] - np.arange(num_chroma)[:, None] + half + 10 * num_chroma, num_chroma) - half
    bank = np.exp(-0.5 * (2 * offset / width[None, :]) ** 2)
    bank = bank / np.sqrt(np.sum(bank**2, axis=0, keepdims=True))
    bank = bank * np.exp(-0.5 * ((pitch / num_chroma - 5.0) / 2.0) ** 2)[None, :]
    bank = np.roll(bank, -3 * (num_chroma // 12), axis=0)  # start at C, not A
    return torch.from_numpy(np.ascontiguousarray(bank[:, : n_fft // 2 + 1])).float()


def _as_batch(wav: torch.Tensor) -> torch.Tensor:
    """[T] or [B, T] -> float32 [B, T]."""
    if wav.dim() == 1:
        wav = wav.unsqueeze(0)
    if wav.dim() != 2:
        raise ValueError(f"expected mono audio shaped [T] or [B, T], got {tuple(wav.shape)}")
    return wav.float()


def _normalized_chroma(wav: torch.Tensor, sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT,
                       hop: int = HOP, num_chroma: int = NUM_CHROMA) -> torch.Tensor:
    """Chroma before the argmax: [B, frames, num_chroma], each frame divided by its maximum."""
    wav = _as_batch(wav)
    if wav.shape[-1] < n_fft:  # too short for one window: centre it in zeros
        pad = n_fft - wav.shape[-1]
        wav = F.pad(wav, (pad // 2, pad // 2 + pad % 2))
    window = torch.hann_window(n_fft, dtype=wav.dtype, device=wav.device)  # periodic
    spec = torch.stft(wav, n_fft, hop_length=hop, win_length=n_fft, window=window, center=True,
                      pad_mode="reflect", normalized=False, onesided=True, return_complex=True)
    # torchaudio's normalized=True ("window") scales the STFT by 1/sqrt(sum(w^2)) before the power
    power = (spec / window.pow(2).sum().sqrt()).abs().pow(2)  # [B, n_fft // 2 + 1, frames]
    bank = _filter_bank(sample_rate, n_fft, num_chroma).to(power.device)
    raw = torch.einsum("cf,bft->btc", bank, power)
    return F.normalize(raw, p=float("inf"), dim=-1, eps=1e-6)


def chroma(wav: torch.Tensor, sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT, hop: int = HOP,
           num_chroma: int = NUM_CHROMA) -> torch.Tensor:
    """One-hot (argmax) chroma of mono audio at ``sample_rate``.

    ``wav`` is [B, T] or [T]; returns float32 [B, 1 + max(T, n_fft) // hop, num_chroma]
    (235 frames for 30 s at 32 kHz). Silent frames come out as pitch class 0 (C).
    """
    norm = _normalized_chroma(wav, sample_rate, n_fft, hop, num_chroma)
    return F.one_hot(norm.argmax(-1), num_chroma).float()


def fit_length(chroma: torch.Tensor, frames: int) -> torch.Tensor:
    """Tile a [B, L, C] chroma along its frames (whole-sequence repeats), then cut to ``frames``."""
    length = chroma.shape[1]
    if length == 0:
        raise ValueError("cannot tile an empty chroma")
    return chroma.repeat(1, math.ceil(frames / length), 1)[:, :frames]


def null_chroma(batch: int, frames: int, num_chroma: int = NUM_CHROMA) -> torch.Tensor:
    """The unconditional chroma used for classifier-free guidance: every frame one-hot at bin 0."""
    out = torch.zeros(batch, frames, num_chroma)
    out[..., 0] = 1
    return out


def cosine_similarity(reference: torch.Tensor, generated: torch.Tensor, sample_rate: int = SAMPLE_RATE) -> float:
    """audiocraft's ChromaCosineSimilarityMetric as MusicGen's solver configures it.

    Both inputs are mono [T] or [B, T] at ``sample_rate`` (resampled to 32 kHz if it differs),
    then cut to the shorter length T. Returns
    the mean, over the first ceil(T / hop) frames of every batch item, of the per-frame cosine
    similarity between the two one-hot chromas (1.0: same pitch class in every frame).
    """
    reference, generated = _as_batch(reference), _as_batch(generated)
    if sample_rate != SAMPLE_RATE:
        reference, generated = (
            torch.from_numpy(resample(x.cpu().numpy(), sample_rate, SAMPLE_RATE)) for x in (reference, generated)
        )
    if reference.shape[0] != generated.shape[0]:
        raise ValueError(f"batch sizes differ: {reference.shape[0]} vs {generated.shape[0]}")
    length = min(reference.shape[-1], generated.shape[-1])
    if length == 0:
        raise ValueError("cannot compare empty audio")
    frames = math.ceil(length / HOP)
    ref = chroma(reference[:, :length])[:, :frames]
    gen = chroma(generated[:, :length])[:, :frames]
    return F.cosine_similarity(ref, gen, dim=-1, eps=1e-8).mean().item()
