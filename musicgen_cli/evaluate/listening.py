"""Measures of what a listener hears in a reconstruction (or any audio against its original).

All take mono float32 numpy audio at 32 kHz. Pitch: ``chroma_agreement`` (share of frames whose one-hot
chroma matches, the melody model's own chroma; keys come from features.key); rhythm: ``onset_correlation`` (features.onset_envelope); artefacts: ``comb_share`` (energy near
multiples of the codec's frame rate, the first codec's signature) and ``dc_offset``. ``plain_synth`` plays a
piece's notes with additive sine tones, music unlike the soundfont renders a codec trained on. ``write_png``
draws spectrograms without matplotlib.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
import torch

from .. import chroma as _chroma
from . import features as ft

SR = ft.SAMPLE_RATE


def chroma_agreement(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Share of frames whose one-hot (argmax) chroma is the same (musicgen_cli.chroma, 0.128 s frames)."""
    n = min(len(reference), len(estimate))
    a = _chroma.chroma(torch.from_numpy(np.ascontiguousarray(reference[:n], dtype=np.float32)))[0]
    b = _chroma.chroma(torch.from_numpy(np.ascontiguousarray(estimate[:n], dtype=np.float32)))[0]
    return float((a.argmax(-1) == b.argmax(-1)).float().mean())


def onset_correlation(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Pearson correlation of the two spectral-flux onset envelopes (100 frames/s)."""
    n = min(len(reference), len(estimate))
    a, b = ft.onset_envelope(reference[:n])[0], ft.onset_envelope(estimate[:n])[0]
    if a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def comb_share(audio: np.ndarray, spacing: float = 50.0, width: float = 2.0, lo: float = 40.0,
               hi: float = 4000.0) -> float:
    """Share of the lo-hi Hz energy (whole-clip spectrum) within +-width Hz of a multiple of ``spacing``.
    Broadband audio gives about 2 * width / spacing (0.08); a 50 Hz comb gives nearly 1."""
    power = np.abs(np.fft.rfft(np.asarray(audio, np.float64) * np.hanning(len(audio)))) ** 2
    freqs = np.fft.rfftfreq(len(audio), 1 / SR)
    band = (freqs >= lo) & (freqs <= hi)
    near = np.abs(freqs - spacing * np.round(freqs / spacing)) <= width
    return float(power[band & near].sum() / (power[band].sum() + 1e-20))


def dc_offset(audio: np.ndarray) -> float:
    """|mean| relative to the RMS (0 for a centred signal, 1 for a constant)."""
    x = np.asarray(audio, np.float64)
    return float(abs(x.mean()) / (np.sqrt((x ** 2).mean()) + 1e-12))


def plain_synth(piece, seconds: float | None = None) -> np.ndarray:
    """The piece's pitched notes (no drums) as decaying additive sine tones: 6 partials at 1/k amplitude,
    10 ms attack, exponential decay; scaled like the dataset's renders."""
    from ..data.compose import DRUM_CHANNEL
    from ..data.dataset import level

    total = int(round((seconds or piece.seconds) * SR))
    out = np.zeros(total)
    for n in piece.notes:
        if n.channel == DRUM_CHANNEL:
            continue
        start = int(n.start * SR)
        length = min(int((n.duration + 0.1) * SR), total - start)
        if length <= 0:
            continue
        t = np.arange(length) / SR
        f0 = 440.0 * 2 ** ((n.pitch - 69) / 12)
        tone = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 7) if k * f0 < SR / 2)
        env = np.minimum(t / 0.01, 1) * np.exp(-t * 3.0) * np.clip((n.duration + 0.1 - t) / 0.1, 0, 1)
        out[start : start + length] += n.velocity / 127 * tone * env
    return level(out.astype(np.float32))


def spectrogram_image(audio: np.ndarray, n_fft: int = 4096, hop: int = 640, max_hz: float = 4000.0,
                      floor_db: float = -70.0) -> np.ndarray:
    """Log-power spectrogram 0-max_hz as uint8 [freq (high first), time], 0 dB at the loudest bin."""
    power = ft._power_spectrogram(audio, n_fft, hop)[:, : int(max_hz / SR * n_fft)]
    db = 10 * np.log10(power / (power.max() + 1e-20) + 1e-20)
    return (np.clip(1 - db / floor_db, 0, 1) * 255).astype(np.uint8).T[::-1]


def write_png(path, rows: list[np.ndarray]) -> None:
    """Stack uint8 images (same width) with a white gap, colour them (black-red-yellow-white) and write a
    PNG with zlib alone."""
    width = max(r.shape[1] for r in rows)
    parts = []
    for r in rows:
        parts += [np.pad(r, ((0, 0), (0, width - r.shape[1]))), np.full((4, width), 255, np.uint8)]
    gray = np.concatenate(parts[:-1]).astype(np.float64) / 255
    rgb = np.stack([np.clip(3 * gray, 0, 1), np.clip(3 * gray - 1, 0, 1), np.clip(3 * gray - 2, 0, 1)], -1)
    pixels = (rgb * 255).astype(np.uint8)
    raw = b"".join(b"\x00" + row.tobytes() for row in pixels)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", pixels.shape[1], pixels.shape[0], 8, 2, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6))
                + chunk(b"IEND", b""))
