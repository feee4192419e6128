"""Work on a signal that arrives in chunks, giving the same result as on the whole signal at once.

Each stage has push(x) -> the output that is now final (None if none yet) and end() -> the rest;
x is a numpy array or a torch tensor whose last axis is time. Used for the codec's decoding
(codec_stream.py) and the cleaning of generated audio (audio.Cleaner). Standard library only.
"""

from __future__ import annotations

from typing import Any, Callable

Array = Any  # a numpy array or a torch tensor, time on the last axis


def cat(parts: list):
    """Concatenate along the last axis (numpy arrays or torch tensors)."""
    if len(parts) == 1:
        return parts[0]
    if hasattr(parts[0], "detach"):
        import torch

        return torch.cat(parts, dim=-1)
    import numpy as np

    return np.concatenate(parts, axis=-1)


class Overlap:
    """fn: frames [..., T] -> output [..., T * hop], where the output of frame t depends only on
    frames t - left .. t + right, except at the piece's two ends (where fn sees the same ends as a
    one-shot call). push(new frames) -> the output that is now final (None if none); end() -> the rest."""

    def __init__(self, fn: Callable[[Array], Array], left: int, right: int, hop: int = 1):
        self.fn, self.left, self.right, self.hop = fn, left, right, hop
        self.kept: Array | None = None  # frames start .. start + kept.shape[-1] of the piece
        self.start = 0
        self.done = 0  # frames whose output has been given

    def push(self, x: Array) -> Array | None:
        self.kept = x if self.kept is None else cat([self.kept, x])
        return self._give(self.start + self.kept.shape[-1] - self.right)

    def end(self) -> Array | None:
        return None if self.kept is None else self._give(self.start + self.kept.shape[-1])

    def _give(self, final: int) -> Array | None:
        if final <= self.done:
            return None
        out = self.fn(self.kept)[..., (self.done - self.start) * self.hop : (final - self.start) * self.hop]
        self.done = final
        drop = max(0, final - self.left - self.start)  # the frames still needed as left context stay
        self.kept, self.start = self.kept[..., drop:], self.start + drop
        return out


class Carry:
    """fn(x, state) -> (y, state): a stage that runs forward in time; its state goes on to the next chunk."""

    def __init__(self, fn):
        self.fn, self.state = fn, None

    def push(self, x: Array) -> Array:
        y, self.state = self.fn(x, self.state)
        return y

    def end(self) -> None:
        return None


class Map:
    """A stage that works frame by frame."""

    def __init__(self, fn):
        self.push, self.end = fn, lambda: None


class Chain:
    def __init__(self, *stages):
        self.stages = stages

    def push(self, x: Array | None) -> Array | None:
        for stage in self.stages:
            if x is None:
                return None
            x = stage.push(x)
        return x

    def end(self) -> Array | None:
        x = None
        for stage in self.stages:
            parts = [y for y in (None if x is None else stage.push(x), stage.end()) if y is not None]
            x = cat(parts) if parts else None
        return x
