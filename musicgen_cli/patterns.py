"""The delay pattern: how K codebooks of T frames are laid out as K rows of columns for the LM.

Codebook q is delayed by `delays[q]` columns, and column 0 is a start column, so frame t of
codebook q sits at column t + delays[q] + 1. Every other cell holds the special id (`card`):

    S 0 1 2 3 S S S        mono, delays [0, 1, 2, 3], T = 4 frames
    S S 0 1 2 3 S S
    S S S 0 1 2 3 S
    S S S S 0 1 2 3

A sequence of T frames therefore has T + max(delays) + 1 columns.
"""

from __future__ import annotations

import torch


def delays_for(num_codebooks: int, channels: int = 1) -> list[int]:
    """Mono: [0, 1, ..., K-1]. Stereo (codebooks interleaved L0, R0, L1, R1, ...): [0, 0, 1, 1, ...]."""
    if channels not in (1, 2) or num_codebooks % channels:
        raise ValueError(f"{num_codebooks} codebooks cannot be split over {channels} channels")
    return [q // channels for q in range(num_codebooks)]


def num_columns(frames: int, delays: list[int]) -> int:
    return frames + max(delays) + 1


def frame_index(delays: list[int], columns: int, device=None) -> torch.Tensor:
    """[K, columns] tensor: which frame each cell holds (negative or >= T where it holds nothing)."""
    col = torch.arange(columns, device=device)
    return col[None, :] - torch.tensor(delays, device=device)[:, None] - 1


def build(codes: torch.Tensor, delays: list[int], frames: int, special: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Lay out `codes` [B, K, P] (P <= frames known frames, e.g. a prompt) in a pattern for `frames`.

    Returns (sequence [B, K, columns], known [B, K, columns] bool). Cells for frames >= P are
    filled with `special` and marked unknown; special cells are known.
    """
    batch, k, prompt = codes.shape
    if k != len(delays):
        raise ValueError(f"codes have {k} codebooks, pattern has {len(delays)}")
    if prompt > frames:
        raise ValueError(f"prompt of {prompt} frames is longer than the {frames} frames asked for")
    columns = num_columns(frames, delays)
    t = frame_index(delays, columns, codes.device).expand(batch, k, columns)
    valid = (t >= 0) & (t < frames)
    seq = torch.full((batch, k, columns), special, dtype=torch.long, device=codes.device)
    in_prompt = valid & (t < prompt)
    if prompt:
        seq = torch.where(in_prompt, torch.gather(codes, 2, t.clamp(0, prompt - 1)), seq)
    known = ~valid | in_prompt
    return seq, known


def revert(seq: torch.Tensor, delays: list[int], frames: int, start: int = 0) -> torch.Tensor:
    """Inverse of `build`: [B, K, columns] -> codes [B, K, frames - start] (frames start .. frames)."""
    cols = torch.arange(start, frames, device=seq.device)[None, :] + torch.tensor(delays, device=seq.device)[:, None] + 1
    return torch.gather(seq, 2, cols.expand(seq.shape[0], -1, -1))
