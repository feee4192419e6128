"""The quality cost of the fast path's weight dtypes, measured against float32 PyTorch (the reference).

    python -m musicgen_cli.evaluate.dtypes --model bundled --seconds 10
    python -m musicgen_cli.evaluate.dtypes --model random-small --seconds 4

`random-small`: the random weights of musicgen-small's shape that `musicgen bench` runs (written
to a temporary folder with the bundled model's tokenizer), for the products' error at full width
and depth; its distributions are flatter than a trained model's (the entropy column says how flat).

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
import shutil
import tempfile
from pathlib import Path

import torch

from musicgen_cli import MusicGen, SamplingOptions, bench
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
        "reference_entropy": float(-(p.exp() * p).sum(-1).mean()),
    }


def random_small(folder: Path) -> str:
    """bench's random musicgen-small-sized model, saved as a checkpoint folder."""
    bench.random_transformers_model("small").save_pretrained(folder)
    bundled = Path(__file__).parents[1] / "models" / "bundled"
    for name in ("spiece.model", "tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(bundled / name, folder / name)
    return str(folder)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="bundled")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--cfg", type=float, default=3.0)
    parser.add_argument("--dtypes", default="float32,bfloat16,int8")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        model = random_small(Path(tmp)) if args.model == "random-small" else args.model
        ref = MusicGen.load(model, device="cpu", backend="torch")
        greedy = SamplingOptions(top_k=1, cfg=args.cfg)
        codes = {prompt: ref.generate_codes([prompt], args.seconds, greedy) for prompt in PROMPTS}
        ref_logits = {prompt: forced_logits(ref, prompt, codes[prompt], args.cfg) for prompt in PROMPTS}
        report = {}
        for dtype in args.dtypes.split(","):
            fast = MusicGen.load(model, device="cpu", backend="cpu", dtype=dtype)
            rows = [compare(ref_logits[p], forced_logits(fast, p, codes[p], args.cfg)) for p in PROMPTS]
            agree = [float((fast.generate_codes([p], args.seconds, greedy) == codes[p]).float().mean()) for p in PROMPTS]
            report[dtype] = {key: sum(r[key] for r in rows) / len(rows) for key in rows[0]}
            report[dtype]["free_running_greedy_agreement"] = sum(agree) / len(agree)
            report[dtype]["kernels"] = getattr(fast.backend.lib, "isa", None)  # which build ran
            print(dtype, json.dumps(report[dtype]), flush=True)
    print(json.dumps({"model": args.model, "seconds": args.seconds, "cfg": args.cfg, "prompts": PROMPTS, "dtypes": report}))

if __name__ == "__main__":
    main()
