"""Each batch row draws with its own seed, and a piece does not depend on the pieces made beside it:
row i of a batch is, sample for sample, what its seed makes alone (the default CPU path)."""

import pytest
import torch

from musicgen_cli import MusicGen
from musicgen_cli.conditioning import with_unconditional
from musicgen_cli.options import SamplingOptions

PROMPTS = ["calm piano", "aggressive heavy metal riff with double kick drums", "x", "rock band with brass"]


@pytest.mark.parametrize("dtype", ["int8", "float32"])
def test_a_piece_in_a_batch_of_four_is_the_piece_alone(mono_ckpt, dtype):
    mg = MusicGen.load(str(mono_ckpt), device="cpu", dtype=dtype)
    assert mg.backend.name == "cpu"
    lengths = mg.text.tokenizer(PROMPTS)[1].sum(dim=1).tolist()
    assert len(set(lengths)) == 4, lengths  # every row but the longest is padded in the batch
    batch = mg.generate(PROMPTS, 1.0, SamplingOptions(seed=3))  # rows: seeds 3, 4, 5, 6
    for i, prompt in enumerate(PROMPTS):
        alone = mg.generate([prompt], 1.0, SamplingOptions(seed=3 + i))
        assert torch.equal(batch[i], alone[0]), (prompt, (batch[i] - alone[0]).abs().max())


def logits(mg, prompts, guided, steps=6):
    """The rows' logits [R, steps, K, card] over a prefill and steps on the same tokens for every row."""
    states, mask = mg.text(prompts)
    mg.lm.set_conditioning(*(with_unconditional(states, mask) if guided else (states, mask)))
    decoder = mg.backend.decoder(SamplingOptions(top_k=1, cfg=3.0 if guided else 1.0))
    decoder.setup((2 if guided else 1) * len(prompts), steps)
    codes = torch.randint(0, mg.lm.cfg.card, (1, 4, steps), generator=torch.Generator().manual_seed(0))
    codes = codes.expand(len(prompts), -1, -1)
    out = [decoder.logits(decoder.rows(codes[:, :, :1]), 0)]
    out += [decoder.logits(decoder.rows(codes[:, :, c : c + 1]), c) for c in range(1, steps)]
    return torch.stack(out, dim=1)


@pytest.mark.parametrize("dtype,guided", [("int8", True), ("float32", True), ("int8", False)])
def test_a_rows_logits_are_bit_for_bit_those_it_has_alone(mono_ckpt, dtype, guided):
    """Finer than the audio (a last-bit difference rarely changes a draw): the text states, the
    conditioning's products (a product of under 4 rows rounds differently: "x" without guidance),
    the prefill and every step of a padded row in a batch of four."""
    mg = MusicGen.load(str(mono_ckpt), device="cpu", dtype=dtype)
    batch = logits(mg, PROMPTS, guided)
    for i, prompt in enumerate(PROMPTS):
        alone = logits(mg, [prompt], guided)
        assert torch.equal(batch[i], alone[0]), prompt
        assert not guided or torch.equal(batch[len(PROMPTS) + i], alone[1]), prompt


@pytest.mark.parametrize("backend", ["cpu", "torch"])
def test_each_row_has_its_own_seed(mono_ckpt, backend):
    mg = MusicGen.load(str(mono_ckpt), device="cpu", backend=backend)
    both = mg.generate_codes(["surf rock", "surf rock"], 1.0, SamplingOptions(seeds=(8, 2)))
    swapped = mg.generate_codes(["surf rock", "surf rock"], 1.0, SamplingOptions(seeds=(2, 8)))
    assert not torch.equal(both[0], both[1])
    assert torch.equal(both[0], swapped[1]) and torch.equal(both[1], swapped[0])
    with pytest.raises(ValueError, match="2 seeds for a batch of 3"):
        mg.generate_codes(["a", "b", "c"], 1.0, SamplingOptions(seeds=(1, 2)))


def test_a_melody_layout_model_batches_only_prompts_of_as_many_tokens(melody_ckpt, mono_ckpt):
    """Its text is part of the prefix, padding included: prompts of other lengths go to other batches,
    and a piece in a batch of prompts of its length is the piece alone."""
    mg = MusicGen.load(str(melody_ckpt), device="cpu")
    lengths = mg.text.tokenizer(PROMPTS + ["calm piano"])[1].sum(dim=1).tolist()
    assert mg.batches(PROMPTS + ["calm piano"], 8) == [[0, 4], [1], [2], [3]], lengths
    assert MusicGen.load(str(mono_ckpt), device="cpu").batches(PROMPTS, 3) == [[0, 1, 2], [3]]
    pair = mg.generate(["calm piano", "calm piano"], 1.0, SamplingOptions(seed=4))
    assert torch.equal(pair[1], mg.generate(["calm piano"], 1.0, SamplingOptions(seed=5))[0])
