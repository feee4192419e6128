"""The audio codec (our EnCodec, musicgen_cli/encodec.py): waveform <-> codes. Stereo runs the mono codec on
the left channel / codebooks (even indices) and the right ones (odd indices) separately."""

from __future__ import annotations

import torch

from . import codec_stream
from .encodec import EnCodec


class Codec:
    def __init__(self, model: EnCodec, channels: int = 1):
        self.model = model.eval()
        self.channels = channels

    @property
    def sample_rate(self) -> int:
        return self.model.sampling_rate

    @property
    def frame_rate(self) -> float:
        return self.model.frame_rate

    @property
    def hop_length(self) -> int:
        return self.model.hop_length  # samples per frame of codes

    @torch.inference_mode()
    def encode(self, wav: torch.Tensor, num_codebooks: int) -> torch.Tensor:
        """waveform [B, channels, samples] at `sample_rate` -> codes [B, num_codebooks, frames]
        (codebooks L0, R0, L1, R1, ... for stereo). Whole frames: samples / hop_length of them."""
        device = next(self.model.parameters()).device
        wav = wav.to(device=device, dtype=torch.float32)
        if self.model.num_codebooks * self.channels != num_codebooks:
            raise ValueError(f"the codec gives {self.model.num_codebooks * self.channels} codebooks, "
                             f"the model expects {num_codebooks}")
        parts = [self.model.encode(wav[:, c : c + 1]) for c in range(self.channels)]
        return torch.stack(parts, dim=2).flatten(1, 2)  # [B, K/ch, ch, T] -> interleaved [B, K, T]

    @torch.inference_mode()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [B, K, T] -> waveform [B, channels, samples] (float32, on the codec's device)."""
        device = next(self.model.parameters()).device
        codes = codes.to(device)
        parts = [codes[:, c :: self.channels] for c in range(self.channels)]
        out = [self.model.decode(p) for p in parts]
        return torch.cat(out, dim=1).float()

    def stream(self) -> "Stream":
        """A decoder for codes that arrive a few frames at a time (codec_stream.py)."""
        return Stream(self)


class Stream:
    """push(codes [B, K, n], the next frames) -> waveform [B, channels, m] of the samples that are
    now final, or None; end() -> the rest. All of it together equals Codec.decode of all the codes."""

    def __init__(self, codec: Codec):
        self.codec = codec
        self.chains = [codec_stream.stream(codec.model) for _ in range(codec.channels)]

    @torch.inference_mode()
    def push(self, codes: torch.Tensor) -> torch.Tensor | None:
        codes = codes.to(next(self.codec.model.parameters()).device)
        return self._joined([chain.push(codes[:, c :: self.codec.channels]) for c, chain in enumerate(self.chains)])

    @torch.inference_mode()
    def end(self) -> torch.Tensor | None:
        return self._joined([chain.end() for chain in self.chains])

    @staticmethod
    def _joined(parts: list) -> torch.Tensor | None:
        return None if parts[0] is None else torch.cat(parts, dim=1).float()
