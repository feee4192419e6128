"""Reconstruction and score losses for the second codec (musicgen_cli.codec_v2).

- ``SpectralLoss``: at each STFT resolution (512 to 8192 points, hop a quarter window), the L1 distance of
  log magnitudes plus spectral convergence (relative Frobenius error of the linear magnitudes). The
  4096-8192-point windows (7.8-3.9 Hz bins) resolve the harmonics of single notes that a mel loss blurs.
- ``SpectralLoss.semitones``: the 8192-point magnitudes summed into semitone bands (E1-C8, each FFT bin
  shared linearly between its two nearest semitones), log L1: a constant-Q view in which every semitone
  counts alike, so bass notes (a few FFT bins each) weigh as much as the hundreds of bins above 4 kHz.
- ``flux_loss``: L1 between the frame-to-frame differences of the two log-mel spectrograms (1024 points,
  hop 256): the spectral flux that onset detectors read. Noise in a reconstruction's quiet bands flickers
  from frame to frame and buries the onsets; this loss sees that flicker directly.
- ``score_loss``: binary cross-entropy between a linear head on the first quantizer level and the
  composer's piano roll (12 pitch classes, pitched and drum onsets; musicgen_cli.data.score), so the
  first codebook carries the notes the LM is to learn.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

RESOLUTIONS = (512, 1024, 2048, 4096, 8192)


def semitone_bank(n_fft: int, sample_rate: int = 32000, lo: int = 28, hi: int = 108) -> torch.Tensor:
    """[n_fft // 2 + 1, hi - lo] linear interpolation of each FFT bin onto MIDI semitones lo..hi-1."""
    freqs = torch.fft.rfftfreq(n_fft, 1 / sample_rate)
    midi = 69 + 12 * torch.log2(freqs.clamp_min(1e-3) / 440.0)
    below = midi.floor()
    frac = midi - below
    bank = torch.zeros(len(freqs), hi - lo)
    for k, w in ((below, 1 - frac), (below + 1, frac)):
        ok = (k >= lo) & (k < hi)
        bank[ok.nonzero()[:, 0], (k[ok] - lo).long()] = w[ok]
    return bank


class SpectralLoss(torch.nn.Module):
    def __init__(self, resolutions=RESOLUTIONS, floor: float = 1e-5, semitone_fft: int = 8192):
        super().__init__()
        self.resolutions, self.floor, self.semitone_fft = tuple(resolutions), floor, semitone_fft
        for n in set(self.resolutions) | {semitone_fft}:
            self.register_buffer(f"win{n}", torch.hann_window(n), persistent=False)
        self.register_buffer("bank", semitone_bank(semitone_fft), persistent=False)

    def semitones(self, ref: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """Log L1 between semitone-band magnitudes (a constant-Q view) of the two signals."""
        a, b = (self.magnitude(x, self.semitone_fft).transpose(1, 2) @ self.bank for x in (ref, out))
        return F.l1_loss(torch.log(b + self.floor), torch.log(a + self.floor))

    def magnitude(self, x: torch.Tensor, n: int) -> torch.Tensor:
        x = x.reshape(-1, x.shape[-1])
        return torch.stft(x, n, n // 4, window=getattr(self, f"win{n}"), return_complex=True).abs()

    def forward(self, ref: torch.Tensor, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean log-magnitude L1, mean spectral convergence) over the resolutions."""
        log_l1, conv = 0.0, 0.0
        for n in self.resolutions:
            a, b = self.magnitude(ref, n), self.magnitude(out, n)
            log_l1 = log_l1 + F.l1_loss(torch.log(b + self.floor), torch.log(a + self.floor))
            conv = conv + torch.linalg.norm(a - b) / (torch.linalg.norm(a) + 1e-8)
        k = len(self.resolutions)
        return log_l1 / k, conv / k


def flux_loss(mel, ref: torch.Tensor, out: torch.Tensor, n_fft: int = 1024) -> torch.Tensor:
    """``mel``: a train.codec.MelLoss (its ``mel(x, n)`` is log-mel [B, frames, bands] with hop n // 4)."""
    a, b = mel.mel(ref, n_fft), mel.mel(out, n_fft)
    return F.l1_loss(b.diff(dim=1), a.diff(dim=1))


def score_loss(logits: torch.Tensor, roll: torch.Tensor, onset_weight: float = 4.0) -> torch.Tensor:
    """logits [B, 14, T] against the roll [B, T, 14] (0/1). Onsets are rare (a few % of frames), so their
    positive frames weigh ``onset_weight`` times more."""
    target = roll.transpose(1, 2)
    weight = torch.ones_like(target)
    weight[:, 12:] += (onset_weight - 1) * target[:, 12:]
    return F.binary_cross_entropy_with_logits(logits, target, weight=weight)
