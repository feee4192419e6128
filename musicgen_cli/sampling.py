"""Guidance and sampling in plain PyTorch: the reference path the fast kernels are checked against.

Order of operations (as in transformers and audiocraft): classifier-free guidance on raw logits,
then temperature, then top-k, then top-p over what top-k kept, then one seeded draw. Each batch row
draws from its own generator, so a row's tokens do not depend on the rows beside it.
`top_k == 1` (or temperature 0) is exact greedy decoding: argmax, no random draw.
"""

from __future__ import annotations

import torch

from .options import SamplingOptions  # noqa: F401 (its home used to be here)


def guide(cond: torch.Tensor, uncond: torch.Tensor, scale: float) -> torch.Tensor:
    return uncond + (cond - uncond) * scale


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k largest logits of each row (ties with the k-th are kept); the rest become -inf."""
    if k <= 0 or k >= logits.shape[-1]:
        return logits
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Keep the smallest set of most probable tokens whose probability adds up to at least p."""
    if p <= 0.0 or p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    probs = sorted_logits.softmax(dim=-1)
    before = probs.cumsum(dim=-1) - probs  # probability of the tokens ranked above this one
    drop_sorted = before >= p
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def sample(logits: torch.Tensor, opts: SamplingOptions, generator: torch.Generator | None) -> torch.Tensor:
    """logits [..., V] -> token ids [...]."""
    if opts.greedy:
        return logits.argmax(dim=-1)
    logits = top_p_filter(top_k_filter(logits.float() / opts.temperature, opts.top_k), opts.top_p)
    probs = logits.softmax(dim=-1)
    flat = probs.reshape(-1, probs.shape[-1])
    return torch.multinomial(flat, 1, generator=generator).reshape(probs.shape[:-1])


def next_tokens(logits: torch.Tensor, opts: SamplingOptions, generators: list[torch.Generator] | None) -> torch.Tensor:
    """LM output [R, K, V] for R rows (with guidance: B conditional rows then B unconditional) -> [B, K];
    `generators`: one per batch row (None: torch's global generator)."""
    if opts.guided:
        cond, uncond = logits.chunk(2, dim=0)
        logits = guide(cond, uncond, opts.cfg)
    if generators is None or opts.greedy:
        return sample(logits, opts, None)
    return torch.stack([sample(row, opts, g) for row, g in zip(logits, generators, strict=True)])
