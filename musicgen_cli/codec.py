"""The audio codec (EnCodec, from transformers): codes -> waveform. Stereo runs the mono codec
on the left codebooks (even indices) and the right ones (odd indices) separately."""

from __future__ import annotations

import torch


class Codec:
    def __init__(self, model: torch.nn.Module, channels: int = 1):
        self.model = model.eval()
        self.channels = channels

    @property
    def sample_rate(self) -> int:
        return self.model.config.sampling_rate

    @property
    def frame_rate(self) -> float:
        return self.model.config.frame_rate

    @torch.inference_mode()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [B, K, T] -> waveform [B, channels, samples] (float32, on the codec's device)."""
        device = next(self.model.parameters()).device
        codes = codes.to(device)
        parts = [codes[:, c :: self.channels] for c in range(self.channels)]
        out = [self.model.decode(p[None], [None] * p.shape[0]).audio_values for p in parts]
        return torch.cat(out, dim=1).float()
