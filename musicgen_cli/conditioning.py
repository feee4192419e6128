"""Text conditioning: a T5 encoder turns descriptions into the states the LM cross-attends to."""

from __future__ import annotations

import torch


class TextConditioner:
    """Tokenizer + frozen T5 encoder (both from transformers, loaded from the checkpoint)."""

    def __init__(self, tokenizer, encoder: torch.nn.Module):
        self.tokenizer = tokenizer
        self.encoder = encoder.eval()

    @torch.inference_mode()
    def __call__(self, prompts: list[str | None]) -> tuple[torch.Tensor, torch.Tensor]:
        """Descriptions -> (states [B, L, dim], mask [B, L]; 0 marks padding).

        None means no description: that row is all padding, like the unconditional row of guidance."""
        batch = self.tokenizer([p or "" for p in prompts], padding=True, return_tensors="pt")
        device = next(self.encoder.parameters()).device
        mask = batch["attention_mask"].to(device)
        states = self.encoder(input_ids=batch["input_ids"].to(device), attention_mask=mask).last_hidden_state
        described = torch.tensor([p is not None for p in prompts], device=device)
        return states, mask * described[:, None]


def with_unconditional(states: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Append the unconditional rows of classifier-free guidance: no text (zero states, zero mask)."""
    return torch.cat([states, torch.zeros_like(states)]), torch.cat([mask, torch.zeros_like(mask)])
