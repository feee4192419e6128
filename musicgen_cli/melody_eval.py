"""How closely a melody model follows a tune, by audiocraft's chroma cosine similarity.

    python -m musicgen_cli.melody_eval --model facebook/musicgen-melody --duration 10 --seeds 3

A test melody is synthesised (a tune of harmonic tones, so it has a voice-like timbre rather than
pure sines); the model makes music from it with each style; the similarity between the melody's
chroma and the output's is printed next to two baselines: the same model and seeds without the
melody (what text alone gives), and the melody against itself transposed by a tritone (none of
its pitch classes in common: 0). musicgen-melody's model card reports 0.44 on its benchmark.
"""

from __future__ import annotations

import argparse
import statistics

import torch

from . import chroma
from .sampling import SamplingOptions

TUNE = [0, 2, 4, 5, 7, 5, 4, 2, 0, 4, 7, 12, 7, 4, 2, 0]  # semitones above C4, a quarter note each
STYLES = ["orchestral", "lo-fi hip hop", "rock band with electric guitars"]


def test_melody(seconds: float, bpm: float = 100.0, transpose: int = 0) -> torch.Tensor:
    """The tune, looped to `seconds`, as [samples] float32 at chroma.SAMPLE_RATE."""
    sr, beat = chroma.SAMPLE_RATE, 60.0 / bpm
    t = torch.arange(int(seconds * sr)) / sr
    step = (t / beat).long()
    freq = 261.63 * 2 ** ((torch.tensor(TUNE)[step % len(TUNE)] + transpose) / 12)
    phase = 2 * torch.pi * torch.cumsum(freq / sr, 0)
    envelope = torch.exp(-2.0 * (t / beat - step))
    voice = sum(torch.sin(h * phase) / h for h in (1, 2, 3, 4))
    return (0.3 * envelope * voice).float()


def similarity(mg, melody: torch.Tensor, style: str, duration: float, seed: int, follow: bool) -> float:
    opts = SamplingOptions(seed=seed)
    codes = mg.generate_codes([style], duration, opts, melody=melody[None] if follow else None)
    out = mg.codec.decode(codes)[0].mean(0).cpu()  # mono mix
    if mg.sample_rate != chroma.SAMPLE_RATE:
        from .audio import resample

        out = torch.from_numpy(resample(out.numpy(), mg.sample_rate, chroma.SAMPLE_RATE))
    return chroma.cosine_similarity(melody, out)  # both cut to the shorter


def main(argv: list[str] | None = None) -> dict:
    from .api import MusicGen

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a melody checkpoint (folder or hub id in the cache)")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)

    mg = MusicGen.load(args.model, device=args.device)
    melody = test_melody(args.duration)
    results = {"with melody": [], "text only": []}
    for style in STYLES:
        for seed in range(args.seeds):
            results["with melody"].append(similarity(mg, melody, style, args.duration, seed, follow=True))
            results["text only"].append(similarity(mg, melody, style, args.duration, seed, follow=False))
    results["tritone away (0 by construction)"] = [
        chroma.cosine_similarity(melody, test_melody(args.duration, transpose=6))
    ]
    print(f"chroma cosine similarity, {args.model}, {len(STYLES)} styles x {args.seeds} seeds, {args.duration:g} s")
    for name, values in results.items():
        print(f"  {name:34s} median {statistics.median(values):.3f}  (min {min(values):.3f}, max {max(values):.3f})")
    return {name: statistics.median(values) for name, values in results.items()}


if __name__ == "__main__":
    main()
