"""The LM's training loss (musicgen_cli/train/lm.py): the right cells, and it can be lowered.

The delay pattern puts K codebooks of T frames in K rows of T + max(delay) + 1 columns; the other
cells hold the special id. The loss must be the mean cross-entropy over exactly the T x K real
cells, each predicted from the column before it, and nothing the model says at a special cell
may count.
"""

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from musicgen_cli import patterns
from musicgen_cli.train import lm
from tiny_checkpoints import make_encodec_folder, tokenizer_vocab_size

CARD, K, T, B = 16, 4, 10, 2
DELAYS = patterns.delays_for(K)


class FixedScores(torch.nn.Module):
    """A stand-in LM whose logits [B*K, columns - 1, CARD] are a fixed table, whatever the inputs."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.logits = torch.nn.Parameter(logits.clone())
        self.config = SimpleNamespace(decoder=SimpleNamespace(vocab_size=CARD))

    def forward(self, *, decoder_input_ids, **_):
        assert decoder_input_ids.shape == self.logits.shape[:2]
        return SimpleNamespace(logits=self.logits)


def batch_of(codes: torch.Tensor) -> dict:
    return {"codes": codes, "input_ids": None, "attention_mask": None, "melody": None}


def by_hand(logits: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """Frame f of codebook q sits at column f + delay + 1, so it is predicted at column f + delay."""
    losses = [F.cross_entropy(logits[b * K + q, f + DELAYS[q]], codes[b, q, f])
              for b in range(B) for q in range(K) for f in range(T)]
    return torch.stack(losses).mean()


def real_prediction_cells() -> torch.Tensor:
    """[K, columns - 1] bool: the prediction columns whose target is a real cell."""
    target_frame = patterns.frame_index(DELAYS, patterns.num_columns(T, DELAYS))[:, 1:]
    return (target_frame >= 0) & (target_frame < T)


def test_lm_loss_is_the_mean_over_the_real_cells_only():
    gen = torch.Generator().manual_seed(0)
    codes = torch.randint(0, CARD, (B, K, T), generator=gen)
    logits = torch.randn(B * K, T + max(DELAYS), CARD, generator=gen)
    loss = lm.loss_on(FixedScores(logits), batch_of(codes)).detach()
    assert torch.allclose(loss, by_hand(logits, codes), atol=1e-6)

    # whatever the model says where the target is a special cell does not count
    special = ~real_prediction_cells().repeat(B, 1)
    assert int(special.sum()) == B * K * max(DELAYS)
    other = torch.where(special[..., None], 100 * torch.randn(logits.shape, generator=gen), logits)
    assert torch.allclose(lm.loss_on(FixedScores(other), batch_of(codes)), loss, atol=1e-6)

    # a real cell does count: as a target, and as a prediction
    changed = codes.clone()
    changed[1, 2, 5] = (changed[1, 2, 5] + 1) % CARD
    assert abs(lm.loss_on(FixedScores(logits), batch_of(changed)).item() - loss.item()) > 1e-4
    nudged = logits.clone()
    nudged[1 * K + 3, 4 + DELAYS[3], codes[1, 3, 4]] += 5.0  # the right code, more likely
    assert lm.loss_on(FixedScores(nudged), batch_of(codes)).item() < loss.item() - 1e-4


def test_codebook_zero_weight_counts_its_cells_that_many_times():
    gen = torch.Generator().manual_seed(2)
    codes = torch.randint(0, CARD, (B, K, T), generator=gen)
    logits = torch.randn(B * K, T + max(DELAYS), CARD, generator=gen)
    per_book = [F.cross_entropy(torch.stack([logits[b * K + q, f + DELAYS[q]] for b in range(B) for f in range(T)]),
                                torch.stack([codes[b, q, f] for b in range(B) for f in range(T)])) for q in range(K)]
    weighted = (3.0 * per_book[0] + sum(per_book[1:])) / (3.0 + K - 1)  # each book has B * T real cells
    assert torch.allclose(lm.loss_on(FixedScores(logits), batch_of(codes), first_weight=3.0), weighted, atol=1e-6)
    assert not torch.allclose(weighted, by_hand(logits, codes), atol=1e-4)


@pytest.fixture(scope="module")
def tiny_lm(melody_ckpt, tmp_path_factory):
    torch.manual_seed(0)
    codec = make_encodec_folder(melody_ckpt, tmp_path_factory.mktemp("codec"))
    return lm.build_model(codec, tokenizer_vocab_size(), dim=32, layers=1, heads=2, text_dim=16, text_layers=1,
                          dropout=0.0)


def test_a_few_steps_on_one_batch_lower_the_loss(tiny_lm):
    """30 AdamW steps on one fixed batch: the loss falls by at least a third (random tokens are memorised)."""
    card = tiny_lm.config.decoder.vocab_size
    gen = torch.Generator().manual_seed(1)
    k = tiny_lm.config.decoder.num_codebooks
    melody = torch.nn.functional.one_hot(torch.randint(0, 12, (2, lm.CHROMA_LENGTH), generator=gen), 12).float()
    batch = {"codes": torch.randint(0, card, (2, k, 24), generator=gen), "melody": melody,
             "input_ids": torch.tensor([[5, 6, 7, 1], [8, 9, 1, 0]]),
             "attention_mask": torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])}
    params = [p for n, p in tiny_lm.named_parameters() if not n.startswith("audio_encoder.")]
    opt = torch.optim.AdamW(params, lr=3e-3)
    tiny_lm.train()
    losses = []
    for _ in range(30):
        loss = lm.loss_on(tiny_lm, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(torch.log(torch.tensor(float(card))).item(), rel=0.1)  # untrained: uniform
    assert losses[-1] < losses[0] * 2 / 3, losses
