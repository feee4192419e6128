"""Does a codec keep the notes? Reconstructions of freshly rendered held-out pieces, measured as a listener
would (musicgen_cli.evaluate.listening), against chance (another piece) and against the issue-13 gate:

    python -m musicgen_cli.evaluate.codec_report --run /work/ckpt/codec-v2 --heldout DATA/heldout --out DIR
    python -m musicgen_cli.evaluate.codec_report --codec FOLDER ...   # an exported codec_v2 folder

Per piece: key of the reconstruction (features.key) against the composer's key, one-hot chroma agreement
and onset-envelope correlation with the original, comb share, DC offset, mel distance. The same for the
piece's notes played by a plain sine synth (music unlike the soundfont renders). For a training run, also
how well codebook 0 alone names the notes (the score head's F1 against the composer's roll). Writes report.json and
spectrogram PNGs (original above, reconstruction below, 0-4 kHz) into --out.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np
import torch

from ..data import dataset as ds
from ..data.compose import compose
from . import features as ft
from . import listening as ls

GATE = {"key_accuracy": (">=", 0.6), "chroma_agreement": (">=", 0.5), "onset_correlation": (">=", 0.6),
        "comb_share": ("<", 0.2), "dc_offset": ("<", 0.05)}


def measure(codec, pieces: list[tuple[np.ndarray, int, str]]) -> dict:
    """codec: audio -> audio. pieces: (audio, true tonic pitch class, mode). Medians over pieces (key: the
    share right), each with its chance figure: the original against the next piece's original."""
    rows = []
    for i, (ref, tonic, mode) in enumerate(pieces):
        rec = np.asarray(codec(ref), np.float32)[: len(ref)]
        other = pieces[(i + 1) % len(pieces)][0]
        rows.append({
            "key_accuracy": float(ft.key(rec) == (tonic, mode)),
            "key_accuracy_original": float(ft.key(ref) == (tonic, mode)),
            "chroma_agreement": ls.chroma_agreement(ref, rec),
            "chroma_agreement_chance": ls.chroma_agreement(ref, other),
            "onset_correlation": ls.onset_correlation(ref, rec),
            "onset_correlation_chance": ls.onset_correlation(ref, other),
            "comb_share": ls.comb_share(rec),
            "comb_share_original": ls.comb_share(ref),
            "dc_offset": ls.dc_offset(rec),
            "mel_distance": ft.mel_distance(ref, rec),
            "mel_distance_chance": ft.mel_distance(ref, other),
        })
    out = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    for k in ("key_accuracy", "key_accuracy_original"):
        out[k] = float(np.mean([r[k] for r in rows]))
    out["pieces"] = len(rows)
    return out


def gate(summary: dict) -> dict:
    """{measure: passed} for the issue-13 gate."""
    ops = {">=": lambda a, b: a >= b, "<": lambda a, b: a < b}
    return {k: bool(ops[op](summary[k], bound)) for k, (op, bound) in GATE.items()}


def codec_function(model):
    """A BundledCodec as audio -> audio (encode to 4 x 1024 codes, decode), whole frames, zero-padded."""
    hop = model.config.hop_length

    def run(audio: np.ndarray) -> np.ndarray:
        n = -(-len(audio) // hop) * hop
        wav = torch.zeros(1, 1, n)
        wav[0, 0, : len(audio)] = torch.from_numpy(np.asarray(audio, np.float32))
        with torch.no_grad():
            codes = model.encode(wav)
            return model.decode(codes)[0, 0, : len(audio)].numpy()

    return run


def first_level_probe(model, data) -> dict:
    """F1 of the training score head reading codebook 0 alone (its codes' vectors) against the composer's
    roll: pitch classes (columns 0-11) and onsets (12-13, within +-1 frame). Only a training run has the head."""
    from ..data.score import roll_of_seed

    tp, fp, fn = np.zeros(2), np.zeros(2), np.zeros(2)
    for mix, _, _, _, seed in data:
        wav = torch.from_numpy(mix[: len(mix) // 640 * 640])[None, None]
        with torch.no_grad():
            codes = model.encode(wav)[:, 0]  # [B, T]
            first = model.quantizer.books[0].embed[codes]  # [B, T, D]
            guess = (model.aux_head(first)[0] > 0).numpy()
        truth = roll_of_seed(seed, len(mix) / ds.SAMPLE_RATE, guess.shape[0]) > 0
        near = truth.copy()  # an onset one frame early or late still counts
        near[1:, 12:] |= truth[:-1, 12:]
        near[:-1, 12:] |= truth[1:, 12:]
        for i, cols in enumerate((slice(0, 12), slice(12, 14))):
            tp[i] += (guess[:, cols] & near[:, cols]).sum()
            fp[i] += (guess[:, cols] & ~near[:, cols]).sum()
            fn[i] += (~guess[:, cols] & truth[:, cols]).sum()
    f1 = 2 * tp / np.maximum(2 * tp + fp + fn, 1)
    return {"pitch_class_f1": float(f1[0]), "onset_f1": float(f1[1])}


def heldout_pieces(folder: str | Path, count: int, seconds: float):
    """(rendered mix, synth version, tonic, mode, seed) of the first ``count`` held-out pieces."""
    n = int(seconds * ds.SAMPLE_RATE)
    items = [it for it in ds.load(folder) if it.seed >= ds.HELD_OUT_SEED][:count]
    if not items:
        raise SystemExit(f"{folder} holds no held-out pieces (seeds >= {ds.HELD_OUT_SEED})")
    for it in items:
        piece = compose(it.seed, max(seconds, 1.0))
        yield ds.read(it.mix)[:n], ls.plain_synth(piece, seconds)[:n], ft.pitch_class(it.key), it.mode, it.seed


def report(codec, folder: str | Path, out: str | Path, count: int = 12, seconds: float = 10.0,
           pictures: int = 3, probe_model=None) -> dict:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = list(heldout_pieces(folder, count, seconds))
    renders = measure(codec, [(mix, tonic, mode) for mix, _, tonic, mode, _ in data])
    synth = measure(codec, [(syn, tonic, mode) for _, syn, tonic, mode, _ in data])
    for mix, syn, _, _, seed in data[:pictures]:
        for name, audio in (("render", mix), ("synth", syn)):
            rows = [ls.spectrogram_image(audio), ls.spectrogram_image(codec(audio))]
            ls.write_png(out / f"{name}-{seed}.png", rows)
    result = {"renders": renders, "synth": synth, "gate": gate(renders), "synth_gate": gate(synth)}
    if probe_model is not None:
        result["codebook0_probe"] = first_level_probe(probe_model, data)
    (out / "report.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--run", help="a codec2 training run folder (its latest checkpoint)")
    which.add_argument("--codec", help="an exported codec_v2 folder (config.json, codec.pt)")
    parser.add_argument("--heldout", required=True, help="a dataset folder rendered with seeds >= 1000000")
    parser.add_argument("--out", required=True, help="where report.json and the PNGs go")
    parser.add_argument("--count", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.run:
        from ..train.codec2 import load_run

        model, step = load_run(args.run)
    else:
        from ..codec_v2 import BundledCodec

        model, step = BundledCodec.load(args.codec), None
    result = report(codec_function(model), args.heldout, args.out, args.count, args.seconds,
                    probe_model=model if args.run else None)
    result["step"] = step
    (Path(args.out) / "report.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
