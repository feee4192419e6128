"""The audio codec (EnCodec, from transformers): codes <-> waveform. Stereo runs the mono codec
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

    @torch.inference_mode()
    def encode(self, wav: torch.Tensor) -> torch.Tensor:
        """waveform [B, channels, samples] at `sample_rate` -> codes [B, K, T] (channels interleaved)."""
        device = next(self.model.parameters()).device
        bandwidth = max(self.model.config.target_bandwidths)
        per_channel = [
            self.model.encode(wav[:, c : c + 1].to(device), bandwidth=bandwidth).audio_codes[0]
            for c in range(self.channels)
        ]
        return torch.stack(per_channel, dim=2).flatten(1, 2)  # [B, K/ch, ch, T] -> L0, R0, L1, R1, ...
