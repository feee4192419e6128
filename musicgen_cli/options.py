"""What a user chooses before any model loads: the sampling knobs and the duration, each checked.

Standard library only, so the command line checks its arguments without importing torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import MusicgenError

MAX_DURATION = 3600.0  # seconds: longer requests are treated as a mistake
NORMALIZATIONS = ("peak", "loudness", "none")  # how the written audio is scaled (audio.normalize)


def check_duration(seconds: float) -> float:
    if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds > 0):
        raise MusicgenError(f"duration must be a positive number of seconds, got {seconds:g}")
    if seconds > MAX_DURATION:
        raise MusicgenError(f"duration {seconds:g} s is too long (at most {MAX_DURATION:g} s)")
    return seconds


def check_continuation(input_seconds: float, duration: float) -> None:
    if duration <= input_seconds:
        raise MusicgenError(
            f"the input already lasts {input_seconds:.2f} s; --duration is the length of the whole output, "
            f"so ask for more than that"
        )


@dataclass(frozen=True)
class SamplingOptions:
    top_k: int = 250  # 0 = no top-k filter
    top_p: float = 0.0  # 0 = no top-p filter
    temperature: float = 1.0
    cfg: float = 3.0  # classifier-free guidance scale; 1 = no guidance
    seed: int = 0

    def __post_init__(self):
        if self.top_k < 0:
            raise ValueError("top-k must be 0 (off) or a positive number of tokens")
        if not 0.0 <= self.top_p <= 1.0:
            raise ValueError("top-p must be between 0 (off) and 1")
        if not self.temperature >= 0.0:
            raise ValueError("temperature must be 0 (greedy) or more")
        if not self.cfg >= 0.0:
            raise ValueError("the guidance scale (cfg) must be 0 or more")

    @property
    def greedy(self) -> bool:
        return self.top_k == 1 or self.temperature == 0.0

    @property
    def guided(self) -> bool:
        return self.cfg != 1.0
