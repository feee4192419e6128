"""Carry on the user's audio: the end of it is the prompt, and the output keeps their own samples.

The codec re-synthesises the prompt on its way through the model; peers hand that re-synthesis
back, which audibly degrades the user's audio. Here the output is the user's samples, unchanged,
then a short crossfade into the re-synthesis where the two overlap, then the new music.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from . import audio
from .errors import MusicgenError
from .generation import Progress
from .options import PROMPT_SECONDS, check_continuation
from .sampling import SamplingOptions

CROSSFADE_SECONDS = 0.05


def default_prompt_seconds(mg) -> float:
    """How much of the input the model hears by default: 10 s, or a third of a shorter window."""
    return min(PROMPT_SECONDS, mg.max_duration / 3)


def at_model_rate(mg, wav: np.ndarray, sr: int, start: int) -> tuple[np.ndarray, int]:
    """The end of an input, `wav` [C, n] at `sr` whose first sample is the input's `start`-th, at the
    model's rate -> (audio, how many of the whole input's samples at the model's rate precede it).
    It starts at the first input sample that falls on the model rate's grid, so that it is the tail
    of what resampling the whole input gives (but for the resampler's settling at its start)."""
    step = sr // math.gcd(sr, mg.sample_rate)  # input samples between two instants on both grids
    skip = -start % step
    return audio.resample(wav[:, skip:], sr, mg.sample_rate), (start + skip) // step * (mg.sample_rate * step // sr)


def plan(mg, samples: int, duration: float, prompt_seconds: float, available: int | None = None) -> tuple[int, int]:
    """Check a request to continue an input of `samples` samples to `duration` seconds, of which the
    last `available` (default: all) are at hand -> (prompt samples: the last `prompt_seconds` of the
    input at most, in whole codec frames; frames for the model to make, the prompt's included)."""
    sr, hop = mg.sample_rate, mg.codec.hop_length
    check_continuation(samples / sr, duration, only_new=True)
    if not 0 < prompt_seconds < mg.max_duration:
        raise MusicgenError(f"--prompt-seconds must be above 0 and below {mg.max_duration:g}, got {prompt_seconds:g}")
    prompt = min(int(prompt_seconds * sr), samples if available is None else available) // hop * hop
    if prompt == 0:
        raise MusicgenError(f"the input is too short to continue: at least {hop / sr * 1000:g} ms are needed")
    return prompt, prompt // hop + math.ceil((round(duration * sr) - samples) / hop)


def splice(original: np.ndarray, resynth: np.ndarray, prompt: int, total: int, fade: int) -> np.ndarray:
    """original [C, N]; resynth [C, M]: the decoded prompt (its last `prompt` samples overlap the end
    of `original`) followed by new audio. -> [C, total]: original, unchanged up to the last `fade`
    samples, which crossfade linearly into the re-synthesis; then the new audio."""
    n = original.shape[1]
    out = np.concatenate([original, resynth[:, prompt : prompt + total - n]], axis=1)
    fade = min(fade, prompt)
    if fade:
        ramp = (np.arange(1, fade + 1, dtype=np.float32) / (fade + 1))[None]
        out[:, n - fade : n] = original[:, n - fade :] * (1 - ramp) + resynth[:, prompt - fade : prompt] * ramp
    return out


def continue_audio(
    mg,
    wav: np.ndarray,
    duration: float,
    prompt_seconds: float | None = None,
    description: str | None = None,
    options: SamplingOptions = SamplingOptions(),
    stride: float | None = None,
    progress: Progress | None = None,
    before: int = 0,
) -> np.ndarray:
    """Continue an input until it lasts `duration` seconds: `wav` [C, N] is the input (at the model's
    sample rate, mono or stereo), or its end, `before` samples from its start (at_model_rate). Returns
    [max(C, model channels), round(duration * sample_rate) - before] float32: `wav`, then the new audio."""
    n = wav.shape[1]
    prompt_seconds = default_prompt_seconds(mg) if prompt_seconds is None else prompt_seconds
    prompt, frames = plan(mg, before + n, duration, prompt_seconds, available=n)
    model_in = torch.from_numpy(np.ascontiguousarray(audio.match_channels(wav[:, n - prompt :], mg.channels)))
    codes = mg.generate_codes(
        [description], frames / mg.frame_rate, options, stride, progress, audio=model_in[None]
    )
    resynth = mg.decode(codes)[0].cpu().numpy()
    channels = max(wav.shape[0], mg.channels)
    total, fade = round(duration * mg.sample_rate) - before, round(CROSSFADE_SECONDS * mg.sample_rate)
    return splice(audio.match_channels(wav, channels), audio.match_channels(resynth, channels), prompt, total, fade)
