"""What a user chooses before any model loads: the sampling knobs and the duration, each checked.

Standard library only, so the command line checks its arguments without importing torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import MusicgenError

MAX_DURATION = 3600.0  # seconds: longer requests are treated as a mistake
MIN_STRIDE = 1.0  # seconds a new window must add (shorter: one window per few frames, hours of work)
MAX_SEED = 2**63 - 1  # seeds are 64-bit signed on the GPU path
DEVICES = ("auto", "cpu", "cuda")  # and cuda:N
# T5 reads 512 tokens (its tokenizer's model_max_length); a token is rarely under 4 characters, and
# attention costs the square of the length (100,000 characters asked for 42 GB): cut longer prompts.
MAX_PROMPT_CHARS = 2000
PROMPT_SECONDS = 10.0  # `continue`: the model hears this much of the input's end by default (less if its window is short)


def cap_prompt(prompt: str, what: str = "a prompt") -> tuple[str, str | None]:
    """(the prompt, cut to MAX_PROMPT_CHARS at a word boundary if longer; a one-line note, or None)."""
    if len(prompt) <= MAX_PROMPT_CHARS:
        return prompt, None
    cut = prompt[:MAX_PROMPT_CHARS]
    cut = cut.rsplit(None, 1)[0] if " " in cut.strip() else cut
    return cut, (f"{what} was {len(prompt)} characters, more than the text encoder reads (512 tokens); "
                 f"it was cut to its first {len(cut)}")
NORMALIZATIONS = ("peak", "loudness", "none")  # how the written audio is scaled (audio.normalize)


def check_duration(seconds: float) -> float:
    if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds > 0):
        raise MusicgenError(f"duration must be a positive number of seconds, got {seconds:g}")
    if seconds > MAX_DURATION:
        raise MusicgenError(f"duration {seconds:.10g} s is too long (at most {MAX_DURATION:g} s)")
    return seconds


def check_stride(stride: float | None) -> None:
    """The lower bound (the upper one, the model's window, is checked once the model is known)."""
    if stride is not None and not (math.isfinite(stride) and stride >= MIN_STRIDE):
        raise MusicgenError(f"--stride must be at least {MIN_STRIDE:g} second (and at most the model's window), got {stride:g}")


def check_device(device: str) -> None:
    index = device[5:] if device.startswith("cuda:") else None
    if device not in DEVICES and not (index and index.isdigit()):
        raise MusicgenError(f"--device must be auto, cpu, cuda or cuda:N, got '{device}'")


def check_prompt_seconds(seconds: float | None) -> None:
    """The lower bound (the upper one, the model's window, is checked once the model is known)."""
    if seconds is not None and not (math.isfinite(seconds) and seconds > 0):
        raise MusicgenError(f"--prompt-seconds must be above 0 (and below the model's window), got {seconds:g}")


def check_continuation(input_seconds: float, duration: float, only_new: bool = False) -> None:
    """`continue`: the output lasts `duration` s, the input's included; what is written (with
    `only_new`, the new part alone) lasts at most MAX_DURATION."""
    if not math.isfinite(duration):
        raise MusicgenError(f"duration must be a positive number of seconds, got {duration:g}")
    if duration <= input_seconds:
        raise MusicgenError(
            f"the input already lasts {input_seconds:.2f} s; --duration is the length of the whole output, "
            f"so ask for more than that"
        )
    written = duration - input_seconds if only_new else duration
    if written > MAX_DURATION:
        held = "" if only_new else f", the input's {input_seconds:.10g} s included (--only-new writes only the new part)"
        raise MusicgenError(f"the output would last {written:.10g} s{held}; at most {MAX_DURATION:g} s")


@dataclass(frozen=True)
class SamplingOptions:
    top_k: int = 250  # 0 = no top-k filter
    top_p: float = 0.0  # 0 = no top-p filter
    temperature: float = 1.0
    cfg: float = 3.0  # classifier-free guidance scale; 1 = no guidance
    seed: int = 0
    seeds: tuple[int, ...] | None = None  # each batch row's own seed (None: seed, seed + 1, ...)

    def __post_init__(self):
        if not all(0 <= s <= MAX_SEED for s in (self.seed, *(self.seeds or ()))):
            raise ValueError(f"--seed must be between 0 and {MAX_SEED}")
        for name, value in (("top-p", self.top_p), ("temperature", self.temperature), ("cfg", self.cfg)):
            if not math.isfinite(value):
                raise ValueError(f"--{name} must be a finite number, got {value}")
        if self.top_k < 0:
            raise ValueError("top-k must be 0 (off) or a positive number of tokens")
        if not 0.0 <= self.top_p <= 1.0:
            raise ValueError("top-p must be between 0 (off) and 1")
        if not self.temperature >= 0.0:
            raise ValueError("temperature must be 0 (greedy) or more")
        if not self.cfg >= 0.0:
            raise ValueError("the guidance scale (cfg) must be 0 or more")

    def row_seeds(self, rows: int) -> tuple[int, ...]:
        """The seed of each of `rows` batch rows. A row's draws depend on its own seed only, so row i
        of a batch is the piece its seed makes alone (seed + i by default)."""
        if self.seeds is None:
            return tuple((self.seed + i) % (MAX_SEED + 1) for i in range(rows))
        if len(self.seeds) != rows:
            raise ValueError(f"{len(self.seeds)} seeds for a batch of {rows}")
        return self.seeds

    @property
    def greedy(self) -> bool:
        return self.top_k == 1 or self.temperature == 0.0

    @property
    def guided(self) -> bool:
        return self.cfg != 1.0
