"""The Python API: load a model once, generate many times.

    from musicgen_cli import MusicGen, SamplingOptions
    model = MusicGen.load("facebook/musicgen-small")          # a hub id in the local cache, or a folder
    wav = model.generate(["lo-fi jazz"], duration=10.0)      # [batch, channels, samples], float32
    model.sample_rate                                         # 32000
"""

from __future__ import annotations

import math

import torch

from . import checkpoints
from .codec import Codec
from .conditioning import TextConditioner, with_unconditional
from .errors import MusicgenError
from .generation import Progress, generate_codes
from .lm import MusicGenLM
from .sampling import SamplingOptions

MAX_DURATION = 3600.0  # seconds: longer requests are treated as a mistake


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise MusicgenError("--device cuda was asked for, but this torch has no usable CUDA device")
    return torch.device(device)


def check_duration(seconds: float) -> float:
    if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds > 0):
        raise MusicgenError(f"duration must be a positive number of seconds, got {seconds:g}")
    if seconds > MAX_DURATION:
        raise MusicgenError(f"duration {seconds:g} s is too long (at most {MAX_DURATION:g} s)")
    return seconds


class MusicGen:
    def __init__(self, checkpoint: checkpoints.Checkpoint, device: torch.device, dtype: torch.dtype):
        self.name = checkpoint.name
        self.folder = checkpoint.folder
        self.max_duration = checkpoint.max_duration
        with torch.device("meta"):  # no random init: the checkpoint's tensors are assigned as they are
            self.lm = MusicGenLM(checkpoint.lm_config)
        try:
            self.lm.load_state_dict(checkpoint.lm_state, strict=True, assign=True)
        except RuntimeError as e:
            detail = " ".join(str(e).split())[:200]
            raise MusicgenError(f"the checkpoint's decoder weights do not match its config: {detail}") from e
        self.lm.to(device=device, dtype=dtype).eval().requires_grad_(False)
        self.text = TextConditioner(checkpoint.tokenizer, checkpoint.text_encoder.to(device))
        self.codec = Codec(checkpoint.codec.to(device), checkpoint.lm_config.channels)
        self.device = device

    @classmethod
    def load(cls, model: str = checkpoints.DEFAULT_MODEL, device: str = "auto", dtype: torch.dtype = torch.float32):
        return cls(checkpoints.load(str(model)), pick_device(device), dtype)

    @property
    def sample_rate(self) -> int:
        return self.codec.sample_rate

    @property
    def channels(self) -> int:
        return self.lm.cfg.channels

    @property
    def frame_rate(self) -> float:
        return self.codec.frame_rate

    @property
    def default_stride(self) -> float:
        return 0.6 * self.max_duration  # 18 s for the 30 s models, as in audiocraft

    def frames_for(self, seconds: float) -> int:
        return max(1, round(check_duration(seconds) * self.frame_rate))

    @torch.inference_mode()
    def generate_codes(
        self,
        prompts: list[str],
        duration: float,
        options: SamplingOptions = SamplingOptions(),
        stride: float | None = None,
        progress: Progress | None = None,
    ) -> torch.Tensor:
        """Descriptions -> codes [B, K, frames]. Past `max_duration`, each new window keeps the last
        (max_duration - stride) seconds as its prompt; `stride` defaults to 60% of the window."""
        if not prompts:
            raise MusicgenError("no prompt given")
        frames = self.frames_for(duration)
        window = round(self.max_duration * self.frame_rate)
        stride = self.default_stride if stride is None else stride
        if frames > window and not 0 < stride <= self.max_duration:
            raise MusicgenError(f"stride must be between 0 and {self.max_duration:g} seconds, got {stride:g}")
        states, mask = self.text(list(prompts))
        if options.guided:
            states, mask = with_unconditional(states, mask)
        self.lm.set_conditioning(states, mask)
        empty = torch.zeros(len(prompts), self.lm.cfg.num_codebooks, 0, dtype=torch.long, device=self.device)
        stride_frames = max(1, round(stride * self.frame_rate))
        return generate_codes(self.lm, frames, options, empty, window, stride_frames, progress)

    def generate(self, prompts: list[str], duration: float, options: SamplingOptions = SamplingOptions(), **kw):
        """Descriptions -> waveform [B, channels, samples] at `sample_rate`."""
        return self.codec.decode(self.generate_codes(prompts, duration, options, **kw))
