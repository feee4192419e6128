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
from .generation import FrameSink, Progress
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
    input at most, in whole codec frames; frames for the model to make, the prompt's included: math.inf
    for a `duration` of math.inf, a stream without end)."""
    sr, hop = mg.sample_rate, mg.codec.hop_length
    if duration != math.inf:
        check_continuation(samples / sr, duration, only_new=True)
    if not 0 < prompt_seconds < mg.max_duration:
        raise MusicgenError(f"--prompt-seconds must be above 0 and below {mg.max_duration:g}, got {prompt_seconds:g}")
    prompt = min(int(prompt_seconds * sr), samples if available is None else available) // hop * hop
    if prompt == 0:
        raise MusicgenError(f"the input is too short to continue: at least {hop / sr * 1000:g} ms are needed")
    if duration == math.inf:
        return prompt, math.inf
    return prompt, prompt // hop + math.ceil((round(duration * sr) - samples) / hop)


def splice(original: np.ndarray, resynth: np.ndarray, prompt: int, total: int, fade: int) -> np.ndarray:
    """original [C, N]; resynth [C, M]: the decoded prompt (its last `prompt` samples overlap the end
    of `original`) followed by new audio. -> [C, total]: original, unchanged up to the last `fade`
    samples, which crossfade linearly into the re-synthesis; then the new audio."""
    return Splice(original, prompt, total, fade).push(resynth)


class Splice:
    """splice for a re-synthesis that arrives in pieces: push(its next samples) -> the next samples
    of the output (after the user's own: `opening`, or the first push)."""

    def __init__(self, original: np.ndarray, prompt: int, total: int | None, fade: int):
        self.original, self.channels, self.total = original, original.shape[0], total
        self.fade = min(fade, prompt)
        self.skip = prompt - self.fade  # resynth samples under the user's own: not used
        self.wanted = total - original.shape[1] + self.fade if total is not None else math.inf  # used from `skip` on
        self.seen, self.opened = 0, False

    def push(self, resynth: np.ndarray) -> np.ndarray:
        at = self.seen - self.skip  # where this chunk starts, counted from the crossfade's start
        self.seen += resynth.shape[1]
        part = audio.match_channels(resynth, self.channels)[:, max(0, -at) : max(0, min(self.wanted - at, resynth.shape[1]))]
        at = max(0, at)
        tail = self.original[:, self.original.shape[1] - self.fade :]  # what the crossfade fades out
        if at < self.fade and part.shape[1]:
            k = min(self.fade - at, part.shape[1])
            ramp = (np.arange(at + 1, at + k + 1, dtype=np.float32) / (self.fade + 1))[None]
            part = np.concatenate([tail[:, at : at + k] * (1 - ramp) + part[:, :k] * ramp, part[:, k:]], axis=1)
        return part if self.opened else np.concatenate([self.opening(), part], axis=1)

    def opening(self) -> np.ndarray:
        """The user's own samples, which come first (a stream sends them before any is generated)."""
        self.opened = True
        return self.original[:, : self.original.shape[1] - self.fade]

    def end(self) -> None:
        return None


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
    on_frames: FrameSink | None = None,
) -> np.ndarray:
    """Continue an input until it lasts `duration` seconds: `wav` [C, N] is the input (at the model's
    sample rate, mono or stereo), or its end, `before` samples from its start (at_model_rate). Returns
    [max(C, model channels), round(duration * sample_rate) - before] float32: `wav`, then the new audio.
    `on_frames` gets the codes as they are made (streaming.Listener, with `splicer` as its shaper)."""
    n = wav.shape[1]
    prompt_seconds = default_prompt_seconds(mg) if prompt_seconds is None else prompt_seconds
    prompt, frames = plan(mg, before + n, duration, prompt_seconds, available=n)
    model_in = torch.from_numpy(np.ascontiguousarray(audio.match_channels(wav[:, n - prompt :], mg.channels)))
    codes = mg.generate_codes(
        [description], frames / mg.frame_rate, options, stride, progress, audio=model_in[None], on_frames=on_frames
    )
    return splicer(mg, wav, duration, prompt, before).push(mg.decode(codes)[0].cpu().numpy())


def splicer(mg, wav: np.ndarray, duration: float, prompt: int, before: int = 0) -> Splice:
    """The Splice that puts the re-synthesis of `wav` (the input's end, `before` samples from its
    start; its last `prompt` samples are the model's prompt, as `plan` says) continued to `duration`
    after the user's own samples."""
    channels, sr = max(wav.shape[0], mg.channels), mg.sample_rate
    total = None if duration == math.inf else round(duration * sr) - before
    return Splice(audio.match_channels(wav, channels), prompt, total, round(CROSSFADE_SECONDS * sr))
