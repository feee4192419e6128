"""How good is a model trained on our renders? Every figure the README quotes, from one command:

    python -m musicgen_cli.evaluate.report --model bundled --heldout DATA/heldout --train DATA/train

- codec: mel distance and SI-SNR of its reconstructions of held-out renders, next to a trivial codec at the
  same bitrate (250 Hz, 8-bit mu-law = 2 kbps) and next to silence (mel distance only);
- text control: a style classifier trained on held-out renders (its own cross-validated accuracy shown)
  applied to generations for held-out captions; tempo error (beat tracker) and key accuracy (chroma);
- melody: chroma cosine similarity between held-out melody stems and generations that follow them, next
  to the same prompts without the melody;
- structure: repetition over 30 s (chroma self-similarity: the best match at least 2 s earlier) and its
  contrast (that minus a typical match, 0 for audio that never changes) of generations next to training
  renders.

Held-out pieces use seeds the training set never saw (data.dataset.HELD_OUT_SEED).
"""

from __future__ import annotations

import argparse
import json
import statistics

import numpy as np
import soxr
import torch

from .. import chroma
from ..data import dataset as ds
from ..sampling import SamplingOptions
from . import features as ft

SR = ds.SAMPLE_RATE


def trivial_codec(audio: np.ndarray, rate: int = 250, bits: int = 8) -> np.ndarray:
    """The same 2 kbps as our 4 x 10-bit codes at 50 Hz, spent naively: 250 Hz, 8-bit mu-law."""
    low = soxr.resample(audio, SR, rate)
    mu = 2 ** bits - 1
    peak = max(float(np.abs(low).max()), 1e-8)
    x = np.clip(low / peak, -1, 1)
    q = np.round((np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu) + 1) / 2 * mu)
    y = 2 * q / mu - 1
    back = np.sign(y) * ((1 + mu) ** np.abs(y) - 1) / mu * peak
    return soxr.resample(back.astype(np.float32), rate, SR)[: len(audio)]


def codec_quality(mg, items: list[ds.Item], seconds: float) -> dict:
    n = int(seconds * SR)
    rows = {"codec": [], "trivial": [], "silence": []}
    for item in items:
        ref = ds.read(item.mix)[:n]
        codes = mg.codec.encode(torch.from_numpy(ref)[None, None], mg.lm.cfg.num_codebooks)
        rec = mg.codec.decode(codes)[0, 0].cpu().numpy()[:n]
        triv = trivial_codec(ref)
        rows["codec"].append((ft.mel_distance(ref, rec), ft.si_snr(ref, rec)))
        rows["trivial"].append((ft.mel_distance(ref, triv), ft.si_snr(ref, triv)))
        rows["silence"].append((ft.mel_distance(ref, np.zeros_like(ref)), float("nan")))
    return {k: {"mel_distance": statistics.median(r[0] for r in v), "si_snr_db": statistics.median(r[1] for r in v)}
            for k, v in rows.items()}


def crops(audio: np.ndarray, seconds: float, count: int) -> list[np.ndarray]:
    n = int(seconds * SR)
    starts = np.linspace(0, len(audio) - n, count).astype(int)
    return [audio[s : s + n] for s in starts]


def style_classifier(train: list[ds.Item], heldout: list[ds.Item], seconds: float) -> tuple[ft.StyleClassifier, float]:
    """Fit on training renders; its accuracy on held-out renders (pieces it never saw)."""
    def features(items):
        rows = [(ft.style_features(c), item.style) for item in items for c in crops(ds.read(item.mix), seconds, 3)]
        return np.stack([r[0] for r in rows]), [r[1] for r in rows]

    clf = ft.StyleClassifier().fit(*features(train))
    return clf, clf.accuracy(*features(heldout))


def names_key(item: ds.Item) -> bool:
    return f"{item.key} {item.mode}" in item.caption


def names_tempo(item: ds.Item) -> bool:
    return f"{round(item.tempo)} bpm" in item.caption.lower()


def generate(mg, prompt: str, seconds: float, seed: int, melody: np.ndarray | None = None) -> np.ndarray:
    kw = {"melody": torch.from_numpy(melody)[None]} if melody is not None else {}
    codes = mg.generate_codes([prompt], seconds, SamplingOptions(seed=seed), **kw)
    return mg.codec.decode(codes)[0].mean(0).cpu().numpy()


def text_control(mg, clf, items: list[ds.Item], seconds: float) -> dict:
    rows = []
    for k, item in enumerate(items):
        audio = generate(mg, item.caption, seconds, seed=k)
        est_tonic, est_mode = ft.key(audio)
        bpm = ft.tempo(audio)
        rows.append({"caption": item.caption, "style": item.style, "heard": clf.predict(ft.style_features(audio)[None])[0],
                     "bpm": item.tempo, "heard_bpm": round(bpm, 1), "key": f"{item.key} {item.mode}",
                     "heard_key": f"{ft.KEY_NAMES[est_tonic]} {est_mode}",
                     "key_ok": est_tonic == ft.pitch_class(item.key) and est_mode == item.mode})
    key_named = [r["key_ok"] for r, item in zip(rows, items) if names_key(item)]
    tempo_named = [ft.octave_tempo_error(r["heard_bpm"], r["bpm"]) <= 0.05 * r["bpm"]
                   for r, item in zip(rows, items) if names_tempo(item)]
    return {
        "style_accuracy": float(np.mean([r["style"] == r["heard"] for r in rows])),
        "key_accuracy_when_named": float(np.mean(key_named)) if key_named else float("nan"),
        "tempo_within_5pct_when_named": float(np.mean(tempo_named)) if tempo_named else float("nan"),
        "tempo_error_bpm_median": statistics.median(ft.tempo_error(r["heard_bpm"], r["bpm"]) for r in rows),
        "tempo_error_bpm_median_octave": statistics.median(ft.octave_tempo_error(r["heard_bpm"], r["bpm"]) for r in rows),
        "key_accuracy": float(np.mean([r["key_ok"] for r in rows])),
        "rows": rows,
    }


def render_reference(items: list[ds.Item], seconds: float) -> dict:
    """The same measures on the held-out renders themselves: what the measuring tools get right."""
    tempo, key = [], []
    for item in items:
        audio = ds.read(item.mix)[: int(seconds * SR)]
        tempo.append(ft.octave_tempo_error(ft.tempo(audio), item.tempo))
        tonic, mode = ft.key(audio)
        key.append(tonic == ft.pitch_class(item.key) and mode == item.mode)
    return {"tempo_error_bpm_median_octave": statistics.median(tempo), "key_accuracy": float(np.mean(key))}


def melody_following(mg, items: list[ds.Item], seconds: float) -> dict:
    n = int(seconds * SR)
    follow, free = [], []
    for k, item in enumerate(items):
        tune = ds.read(item.melody)[:n]
        for out, use in ((follow, True), (free, False)):
            audio = generate(mg, item.style, seconds, seed=k, melody=tune if use else None)
            out.append(chroma.cosine_similarity(torch.from_numpy(tune), torch.from_numpy(audio)))
    return {"with_melody": statistics.median(follow), "text_only": statistics.median(free)}


def structure(mg, heldout: list[ds.Item], train: list[ds.Item], seconds: float) -> dict:
    gen = [generate(mg, item.caption, seconds, seed=k) for k, item in enumerate(heldout)]
    ref = [ds.read(item.mix)[: int(seconds * SR)] for item in train]
    return {f"{name}_{what}": statistics.median(fn(a) for a in audios)
            for name, audios in (("generated", gen), ("training_renders", ref))
            for what, fn in (("repetition", ft.repetition), ("contrast", ft.structure_contrast))}


GATES = {  # issue 13's targets for the bundled model
    "key_heard_when_named": (lambda r: r["text_control"]["key_accuracy_when_named"] >= 0.5),
    "tempo_within_5pct_when_named": (lambda r: r["text_control"]["tempo_within_5pct_when_named"] >= 0.6),
    "style_heard": (lambda r: r["text_control"]["style_accuracy"] >= 0.6),
    "style_classifier_on_renders": (lambda r: r["style_classifier_accuracy_on_heldout_renders"] >= 0.85),
    "melody_followed": (lambda r: r["melody"]["with_melody"] >= 0.35),
    "melody_not_without_it": (lambda r: r["melody"]["text_only"] <= 0.15),
    "structure_contrast": (lambda r: r["structure_30s"]["generated_contrast"] >= 0.1),
    "size": (lambda r: r["size_mb"] <= 60.0),
}


def gates(report: dict) -> dict:
    """Each of issue 13's targets, met or not (a figure that could not be measured is not met)."""
    return {name: bool(test(report)) for name, test in GATES.items()}


def folder_mb(folder) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1e6


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="bundled")
    p.add_argument("--heldout", required=True, help="a dataset folder rendered with seeds >= 1000000")
    p.add_argument("--train", required=True, help="the training dataset folder (structure reference)")
    p.add_argument("--prompts", type=int, default=16, help="held-out captions to generate from")
    p.add_argument("--classifier-pieces", type=int, default=400, help="training renders the style classifier learns from")
    p.add_argument("--out", default=None, help="also write the whole report (with per-prompt rows) as JSON")
    args = p.parse_args(argv)
    from ..api import MusicGen

    torch.manual_seed(0)
    mg = MusicGen.load(args.model)
    heldout, train = ds.load(args.heldout), ds.load(args.train)
    prompts = heldout[: args.prompts]
    report = {"model": args.model, "size_mb": folder_mb(mg.folder), "codec": codec_quality(mg, heldout[:20], 10.0)}
    clf, clf_acc = style_classifier(train[: args.classifier_pieces], heldout, 10.0)
    report["style_classifier_accuracy_on_heldout_renders"] = clf_acc
    report["renders"] = render_reference(prompts, 10.0)
    report["text_control"] = text_control(mg, clf, prompts, 10.0)
    report["melody"] = melody_following(mg, prompts[:8], 10.0)
    report["structure_30s"] = structure(mg, prompts[:6], train[:6], 30.0)
    report["gates"] = gates(report)
    summary = dict(report)
    summary["text_control"] = {k: v for k, v in report["text_control"].items() if k != "rows"}
    print(json.dumps(summary, indent=2))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
