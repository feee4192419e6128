"""The audio codec (EnCodec, from transformers): waveform <-> codes. Stereo runs the mono codec on
the left channel / codebooks (even indices) and the right ones (odd indices) separately."""

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

    @property
    def hop_length(self) -> int:
        return self.model.config.hop_length  # samples per frame of codes

    @torch.inference_mode()
    def encode(self, wav: torch.Tensor, num_codebooks: int) -> torch.Tensor:
        """waveform [B, channels, samples] at `sample_rate` -> codes [B, num_codebooks, frames]
        (codebooks L0, R0, L1, R1, ... for stereo). Whole frames: samples / hop_length of them."""
        device = next(self.model.parameters()).device
        wav = wav.to(device=device, dtype=torch.float32)
        parts = [self.model.encode(wav[:, c : c + 1]).audio_codes[0] for c in range(self.channels)]
        codes = torch.stack(parts, dim=2).flatten(1, 2)  # [B, K/ch, ch, T] -> interleaved [B, K, T]
        if codes.shape[1] != num_codebooks:
            raise ValueError(f"the codec gives {codes.shape[1]} codebooks, the model expects {num_codebooks}")
        return codes

    @torch.inference_mode()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [B, K, T] -> waveform [B, channels, samples] (float32, on the codec's device)."""
        device = next(self.model.parameters()).device
        codes = codes.to(device)
        parts = [codes[:, c :: self.channels] for c in range(self.channels)]
        out = [self.model.decode(p[None], [None] * p.shape[0]).audio_values for p in parts]
        return torch.cat(out, dim=1).float()
