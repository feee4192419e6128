"""Autoregressive generation of codebook frames: prefill, one decode step per column, long-form windows.

Pieces longer than the model's window (30 s for the published models) are generated window by
window: each new window starts from the last (window - stride) frames of tokens as its prompt,
positions restart at 0, and only the new frames are kept. The codec decodes once at the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from . import patterns
from .errors import ModelProducedNaN
from .lm import MusicGenLM
from .sampling import SamplingOptions, next_tokens

Progress = Callable[[int, int], None]  # (steps done, steps in all)


@dataclass(frozen=True)
class Window:
    prompt: int  # frames of tokens given at the start of this window
    total: int  # frames in this window, prompt included


def plan_windows(frames: int, prompt: int, window: int, stride: int) -> list[Window]:
    """Windows that together produce `frames` frames, the first starting from `prompt` frames."""
    if not 0 < stride <= window:
        raise ValueError(f"stride must be between 1 and {window} frames")
    if prompt >= window:
        raise ValueError("the prompt must be shorter than the model's window")
    plan = [Window(prompt, min(frames, window))]
    have = plan[0].total
    while have < frames:
        keep = min(window - stride, have)
        total = min(window, keep + frames - have)
        plan.append(Window(keep, total))
        have += total - keep
    return plan


def steps_in(window: Window, delays: list[int]) -> int:
    """Decode steps (sampled columns) for one window: its new frames plus the pattern's overhang."""
    return window.total - window.prompt + max(delays)


class Decoder:
    """Fills in a window's columns one decode step at a time: the plain PyTorch reference.

    `logits` runs the LM, `sample` draws a column; the fast paths in kernels/ replace one or the
    other (or, on a GPU, the whole `fill` loop) and are tested against this class.
    """

    def __init__(self, lm: MusicGenLM, opts: SamplingOptions):
        self.lm, self.opts, self.step = lm, opts, 0
        self.generators: list[torch.Generator] | None = None  # one per batch row, from its own seed

    def row_generators(self, batch: int) -> list[torch.Generator] | None:
        if self.generators is None and not self.opts.greedy:
            device = self.lm.layer_norm.weight.device
            self.generators = [torch.Generator(device).manual_seed(s) for s in self.opts.row_seeds(batch)]
        return self.generators

    def setup(self, rows: int, columns: int) -> None:
        """Caches for `rows` rows and `columns` columns (after the first conditioning is set)."""
        self.lm.setup_caches(rows, columns)

    def logits(self, codes: torch.Tensor, start: int) -> torch.Tensor:
        """codes [R, K, S] at columns start .. start + S - 1 -> next logits [R, K, card]."""
        return self.lm(codes, start, last_only=True)[:, :, -1]

    def sample(self, logits: torch.Tensor, seq: torch.Tensor, known: torch.Tensor, col: int) -> None:
        """Draw column `col` of seq [B, K, T] from logits [R, K, card], keeping the known cells."""
        self.step += 1
        if not bool(torch.isfinite(logits).all()):
            raise ModelProducedNaN(self.step)
        drawn = next_tokens(logits, self.opts, self.row_generators(seq.shape[0]))
        seq[:, :, col] = torch.where(known[:, :, col], seq[:, :, col], drawn)

    def rows(self, codes: torch.Tensor) -> torch.Tensor:
        return torch.cat([codes, codes]) if self.opts.guided else codes  # conditional, then unconditional

    def fill(self, seq: torch.Tensor, known: torch.Tensor, first: int, on_step: Callable[[], None]) -> None:
        """Sample every column from `first` on (the columns before it are the prompt)."""
        logits = self.logits(self.rows(seq[:, :, :first]), 0)  # prefill
        for col in range(first, seq.shape[2]):
            self.sample(logits, seq, known, col)
            on_step()
            if col + 1 < seq.shape[2]:
                logits = self.logits(self.rows(seq[:, :, col : col + 1]), col)


@torch.inference_mode()
def generate_window(decoder: Decoder, prompt: torch.Tensor, frames: int, on_step: Callable[[], None] = lambda: None) -> torch.Tensor:
    """prompt codes [B, K, P] -> codes [B, K, frames] (the prompt's frames included, unchanged).

    The conditioning and caches must already be set (rows: B, or 2B with guidance).
    """
    cfg = decoder.lm.cfg
    delays = patterns.delays_for(cfg.num_codebooks, cfg.channels)
    seq, known = patterns.build(prompt, delays, frames, cfg.special)
    first = int((~known).any(dim=1).any(dim=0).nonzero()[0])  # first column with a cell to sample
    decoder.fill(seq, known, first, on_step)
    return patterns.revert(seq, delays, frames)


def generate_codes(
    decoder: Decoder,
    frames: int,
    prompt: torch.Tensor,
    window: int,
    stride: int,
    progress: Progress | None = None,
    condition: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """Generate `frames` frames after the prompt codes [B, K, P] (P may be 0), long pieces in windows.

    `condition(first_frame)`, when given, sets the LM's conditioning for the window that starts at
    frame `first_frame` of the piece (melody models: the melody from that point on); otherwise the
    conditioning already set on `lm` serves every window. Returns codes [B, K, frames] including
    the prompt's frames.
    """
    delays = patterns.delays_for(decoder.lm.cfg.num_codebooks, decoder.lm.cfg.channels)
    plan = plan_windows(frames, prompt.shape[2], window, stride)
    total_steps = sum(steps_in(w, delays) for w in plan)
    done = 0

    def on_step() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total_steps)

    rows = prompt.shape[0] * (2 if decoder.opts.guided else 1)
    codes = prompt
    for i, w in enumerate(plan):
        first_frame = codes.shape[2] - w.prompt
        if condition is not None:
            condition(first_frame)
        if i == 0:  # after the first conditioning: the cache also holds a melody model's prefix
            decoder.setup(rows, patterns.num_columns(max(w.total for w in plan), delays))
        new = generate_window(decoder, codes[:, :, first_frame:], w.total, on_step)
        codes = torch.cat([codes[:, :, :first_frame], new], dim=2)
    return codes
