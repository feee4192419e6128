"""The quality cost of the fast path's weight dtypes, measured against float32 PyTorch (the reference).

    python -m musicgen_cli.evaluate.dtypes --model bundled --seconds 10

For each dtype: the reference generates greedy codes for each prompt; then both paths run on
exactly those tokens (teacher forcing) and their guided logits are compared step by step:
relative error (RMS of the difference over RMS of the reference's centred logits), agreement of
the most likely token, and the KL divergence of the sampling distributions at temperature 1.
Free-running greedy agreement (each path on its own tokens) is printed too; one early difference
changes everything after it, so it is the harshest number.
"""

from __future__ import annotations

import argparse
import json

import torch

from musicgen_cli import MusicGen, SamplingOptions
from musicgen_cli.conditioning import with_unconditional
from musicgen_cli import patterns
from musicgen_cli.sampling import guide

PROMPTS = ["lo-fi jazz with soft piano", "energetic rock with drums and electric guitar", "calm orchestral strings"]


@torch.inference_mode()
def forced_logits(mg: MusicGen, prompt: str, codes: torch.Tensor, cfg: float) -> torch.Tensor:
    """Guided logits [steps, K, card] of `mg` on the pattern of `codes` [1, K, frames]."""
    lm = mg.lm
    delays = patterns.delays_for(lm.cfg.num_codebooks, lm.cfg.channels)
    seq, _ = patterns.build(codes, delays, codes.shape[2], lm.cfg.special)
    states, mask = with_unconditional(*mg.text([prompt]))
    mg._conditioning(states, mask, None, None, 1, guided=True)
    decoder = mg.backend.decoder(SamplingOptions(top_k=1, cfg=cfg))
    decoder.setup(2, seq.shape[2])
    out = [decoder.logits(decoder.rows(seq[:, :, :1]), 0)]
    out += [decoder.logits(decoder.rows(seq[:, :, c : c + 1]), c) for c in range(1, seq.shape[2] - 1)]
    logits = torch.stack(out)  # [steps, 2, K, card]
    return guide(logits[:, 0], logits[:, 1], cfg)


def compare(ref: torch.Tensor, got: torch.Tensor) -> dict:
    centred = ref - ref.mean(dim=-1, keepdim=True)
    p, q = ref.log_softmax(-1), got.log_softmax(-1)
    return {
        "relative_error": float((got - ref).pow(2).mean().sqrt() / centred.pow(2).mean().sqrt()),
        "top1_agreement": float((got.argmax(-1) == ref.argmax(-1)).float().mean()),
        "kl": float((p.exp() * (p - q)).sum(-1).mean()),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="bundled")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--cfg", type=float, default=3.0)
    parser.add_argument("--dtypes", default="float32,bfloat16,int8")
    args = parser.parse_args(argv)
    ref = MusicGen.load(args.model, device="cpu", backend="torch")
    greedy = SamplingOptions(top_k=1, cfg=args.cfg)
    report = {}
    for dtype in args.dtypes.split(","):
        fast = MusicGen.load(args.model, device="cpu", backend="cpu", dtype=dtype)
        rows, agree = [], []
        for prompt in PROMPTS:
            codes = ref.generate_codes([prompt], args.seconds, greedy)
            rows.append(compare(forced_logits(ref, prompt, codes, args.cfg), forced_logits(fast, prompt, codes, args.cfg)))
            agree.append(float((fast.generate_codes([prompt], args.seconds, greedy) == codes).float().mean()))
        report[dtype] = {key: sum(r[key] for r in rows) / len(rows) for key in rows[0]}
        report[dtype]["free_running_greedy_agreement"] = sum(agree) / len(agree)
        print(dtype, json.dumps(report[dtype]), flush=True)
    print(json.dumps({"model": args.model, "seconds": args.seconds, "cfg": args.cfg, "prompts": PROMPTS, "dtypes": report}))


if __name__ == "__main__":
    main()
