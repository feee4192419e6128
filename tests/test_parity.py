"""Our engine against transformers' own MusicgenForConditionalGeneration on tiny random checkpoints."""

import pytest
import torch
from transformers import AutoTokenizer, MusicgenForConditionalGeneration

from musicgen_cli import MusicGen, SamplingOptions
from musicgen_cli.conditioning import with_unconditional
from hf_reference import hf_generate

PROMPTS = ["lo-fi jazz with soft piano and a slow beat at 80 bpm", "rock"]  # unequal lengths: padding


def load_both(folder, backend="torch"):
    hf = MusicgenForConditionalGeneration.from_pretrained(folder).eval()
    return hf, MusicGen.load(str(folder), device="cpu", backend=backend, dtype="float32")


def hf_inputs(folder, prompts=PROMPTS):
    return AutoTokenizer.from_pretrained(folder)(prompts, padding=True, return_tensors="pt")


@pytest.mark.parametrize("cfg", [3.0, 1.0])
def test_step_logits_match(ckpt, cfg):
    hf, ours = load_both(ckpt)
    inputs = hf_inputs(ckpt)
    k = hf.decoder.num_codebooks
    torch.manual_seed(0)
    columns = 24
    dec = torch.randint(0, hf.decoder.config.vocab_size + 1, (len(PROMPTS), k, columns))
    with torch.no_grad():
        enc = hf.text_encoder(**inputs).last_hidden_state
        mask = inputs["attention_mask"]
        dec_rows = dec
        if cfg != 1.0:  # transformers' guidance rows: zero states, zero mask
            enc, mask = torch.cat([enc, torch.zeros_like(enc)]), torch.cat([mask, torch.zeros_like(mask)])
            dec_rows = torch.cat([dec, dec])
        ref = hf(encoder_outputs=(enc,), attention_mask=mask, decoder_input_ids=dec_rows.reshape(-1, columns)).logits
        ref = ref.reshape(dec_rows.shape[0], k, columns, -1)

        states, tmask = ours.text(PROMPTS)
        if cfg != 1.0:
            states, tmask = with_unconditional(states, tmask)
        ours.lm.set_conditioning(states, tmask)
        ours.lm.setup_caches(dec_rows.shape[0], columns)
        steps = [ours.lm(dec_rows[:, :, :5], 0)]  # a prefill, then one column per step
        steps += [ours.lm(dec_rows[:, :, c : c + 1], c) for c in range(5, columns)]
    got = torch.cat(steps, dim=2)
    assert got.shape == ref.shape
    assert (got - ref).abs().max() < 1e-4


@pytest.mark.parametrize("backend", ["torch", "cpu"])  # the reference, and the fast path at float32
@pytest.mark.parametrize("cfg", [3.0, 1.0])
def test_greedy_tokens_match_for_120_frames(ckpt, cfg, backend):
    hf, ours = load_both(ckpt, backend)
    frames = 120
    ref, hf_wav = hf_generate(hf, hf_inputs(ckpt), do_sample=False, guidance_scale=cfg, max_new_tokens=frames + 3)

    codes = ours.generate_codes(PROMPTS, frames / 50, SamplingOptions(top_k=1, cfg=cfg))
    assert codes.shape == ref.shape == (len(PROMPTS), hf.decoder.num_codebooks, frames)
    assert torch.equal(codes, ref)
    assert len(torch.unique(codes)) > 8, "greedy tokens should vary for the test to mean something"
    wav = ours.codec.decode(codes)
    assert wav.shape == hf_wav.shape == (len(PROMPTS), ours.channels, frames * 640)
    assert torch.allclose(wav, hf_wav, atol=1e-5)
