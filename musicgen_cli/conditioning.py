"""Text conditioning: a T5 encoder turns descriptions into the states the LM cross-attends to."""

from __future__ import annotations

import torch

from .t5 import T5Encoder
from .tokenizer import T5Tokenizer


class TextConditioner:
    """Tokenizer + frozen T5 encoder (ours: musicgen_cli/tokenizer.py and t5.py, loaded from the checkpoint)."""

    def __init__(self, tokenizer: T5Tokenizer, encoder: T5Encoder):
        self.tokenizer = tokenizer
        self.encoder = encoder.eval()

    @torch.inference_mode()
    def __call__(self, prompts: list[str | None]) -> tuple[torch.Tensor, torch.Tensor]:
        """Descriptions -> (states [B, L, dim], mask [B, L]; 0 marks padding).

        None means no description: that row is all padding, like the unconditional row of guidance.
        Each prompt is encoded alone (its states are zero past its end), so that its states do not
        depend on the prompts beside it: batched products and attention over padding can round
        differently in the last bit, and a sampled piece would then differ from the same seed alone."""
        ids, mask = self.tokenizer([p or "" for p in prompts])
        device = next(self.encoder.parameters()).device
        ids, mask = ids.to(device), mask.to(device)
        states = None
        for row, length in enumerate(mask.sum(dim=1).tolist()):
            alone = self.encoder(ids[row : row + 1, :length], mask[row : row + 1, :length])
            if states is None:
                states = alone.new_zeros(len(prompts), ids.shape[1], alone.shape[-1])
            states[row, :length] = alone[0]
        described = torch.tensor([p is not None for p in prompts], device=device)
        return states, mask * described[:, None]


def with_unconditional(states: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Append the unconditional rows of classifier-free guidance: no text (zero states, zero mask)."""
    return torch.cat([states, torch.zeros_like(states)]), torch.cat([mask, torch.zeros_like(mask)])
