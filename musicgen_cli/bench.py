"""Decode speed, ours next to transformers' `generate`, on the same random weights, in one run.

    python -m musicgen_cli.bench --size small --steps 100 --repeats 3

Both sides get the same published decoder architecture with random weights, the same text
tokens, guidance 3, top-k 250 sampling and the same number of decode steps. The text encoder and
codec are kept tiny (they run once per piece, not per step). Prints medians and the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from .checkpoints import hf_lm_config, hf_to_lm_state
from .conditioning import with_unconditional
from .generation import generate_codes
from .lm import MusicGenLM
from .sampling import SamplingOptions

SIZES = {  # decoder dim, layers, heads, ffn (reference.md's table)
    "small": (1024, 24, 16, 4096),
    "medium": (1536, 48, 24, 6144),
    "large": (2048, 48, 32, 8192),
}


def random_transformers_model(size: str):
    from transformers import EncodecConfig, MusicgenConfig, MusicgenDecoderConfig, MusicgenForConditionalGeneration, T5Config

    dim, layers, heads, ffn = SIZES[size]
    config = MusicgenConfig(
        text_encoder=T5Config(vocab_size=32128, d_model=768, d_kv=64, d_ff=256, num_layers=1, num_heads=12),
        audio_encoder=EncodecConfig(sampling_rate=32000, upsampling_ratios=[8, 5, 4, 4], num_filters=4,
                                    hidden_size=16, codebook_dim=16, codebook_size=2048, target_bandwidths=[2.2]),
        decoder=MusicgenDecoderConfig(hidden_size=dim, num_hidden_layers=layers, num_attention_heads=heads,
                                      ffn_dim=ffn, num_codebooks=4, vocab_size=2048, dropout=0.0),
    )
    torch.manual_seed(0)
    return MusicgenForConditionalGeneration(config).eval()


def timed(fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=SIZES, default="small")
    parser.add_argument("--steps", type=int, default=100, help="decode steps per run (50 steps = 1 s of audio)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    hf = random_transformers_model(args.size)
    dec = hf.config.decoder.to_dict()
    lm = MusicGenLM(hf_lm_config(dec, text_dim=768))
    lm.load_state_dict(hf_to_lm_state(hf.state_dict()))
    lm.eval().requires_grad_(False)
    ids = torch.tensor([[37, 1043, 3, 9, 5, 1]])  # any six text tokens
    mask = torch.ones_like(ids)
    opts = SamplingOptions(top_k=250, cfg=3.0, seed=0)
    frames = args.steps - 3  # the delay pattern's overhang: `steps` decode steps in all

    def ours():
        with torch.inference_mode():
            states = hf.text_encoder(input_ids=ids, attention_mask=mask).last_hidden_state
            lm.set_conditioning(*with_unconditional(states, mask))
            empty = torch.zeros(1, 4, 0, dtype=torch.long)
            generate_codes(lm, frames, opts, empty, window=1500, stride=900)

    def theirs():
        with torch.inference_mode():
            hf.generate(input_ids=ids, attention_mask=mask, do_sample=True, top_k=250, guidance_scale=3.0,
                        max_new_tokens=args.steps)

    ours()  # warm-up (allocator, thread pool)
    t_ours, t_theirs = timed(ours, args.repeats), timed(theirs, args.repeats)
    steps_ours = args.steps / statistics.median(t_ours)
    steps_theirs = args.steps / statistics.median(t_theirs)
    print(f"musicgen-{args.size} architecture, random weights, float32, {torch.get_num_threads()} threads, "
          f"guidance 3, top-k 250, batch 1, {args.steps} steps x {args.repeats} runs")
    for name, rate in (("musicgen (ours)", steps_ours), ("transformers generate", steps_theirs)):
        print(f"  {name:24s} {rate:6.2f} steps/s  {1000 / rate:7.1f} ms/step  real-time factor {rate / 50:.3f}")
    print(f"  ratio ours / transformers: {steps_ours / steps_theirs:.2f}x")


if __name__ == "__main__":
    main()
