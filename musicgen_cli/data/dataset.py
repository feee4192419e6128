"""The training set as a command: compose, caption and render seeded pieces into a folder.

A dataset folder holds ``manifest.jsonl`` (one line per piece: seed, caption, style, tempo, key,
mode, instruments, form) and per piece ``mix/<seed>.flac`` (everything) and ``melody/<seed>.flac``
(the melody instrument alone, which the melody-conditioned model learns to follow). Audio is mono
at the codec's rate, scaled to a common loudness. Same seeds, same files.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from .captions import caption
from .compose import MELODY_CH, compose

SAMPLE_RATE = 32000
TARGET_RMS = 0.1  # -20 dBFS
HELD_OUT_SEED = 1_000_000  # held-out pieces use seeds from here on; training seeds stay below


@dataclass
class Item:
    seed: int
    caption: str
    style: str
    tempo: float
    key: str
    mode: str
    mix: Path
    melody: Path


def level(x: np.ndarray) -> np.ndarray:
    """Scale to TARGET_RMS, never past a 0.99 peak."""
    rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))
    peak = float(np.abs(x).max())
    if rms == 0.0:
        return x
    return (x * min(TARGET_RMS / rms, 0.99 / peak)).astype(np.float32)


def _render_one(args: tuple[int, float, str]) -> dict:
    seed, seconds, folder = args
    from .render import Renderer

    renderer = Renderer(SAMPLE_RATE)
    piece = compose(seed, seconds)
    text = caption(piece, np.random.default_rng([seed, 1]))
    root = Path(folder)
    sf.write(root / "mix" / f"{seed}.flac", level(renderer.render(piece)), SAMPLE_RATE, subtype="PCM_16")
    sf.write(root / "melody" / f"{seed}.flac", level(renderer.render(piece, {MELODY_CH})), SAMPLE_RATE,
             subtype="PCM_16")
    return {"seed": seed, "caption": text, "style": piece.style, "tempo": piece.tempo, "key": piece.key,
            "mode": piece.mode, "instruments": piece.instruments, "sections": piece.sections}


def build(folder: str | Path, count: int, seconds: float = 30.0, first_seed: int = 0, workers: int | None = None,
          progress=None) -> Path:
    """Render ``count`` pieces with seeds first_seed.. into ``folder``; returns the manifest path."""
    root = Path(folder)
    (root / "mix").mkdir(parents=True, exist_ok=True)
    (root / "melody").mkdir(parents=True, exist_ok=True)
    jobs = [(first_seed + i, seconds, str(root)) for i in range(count)]
    rows = []
    with ProcessPoolExecutor(workers or os.cpu_count() or 1) as pool:
        for row in pool.map(_render_one, jobs, chunksize=4):
            rows.append(row)
            if progress:
                progress(len(rows), count)
    manifest = root / "manifest.jsonl"
    tmp = manifest.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tmp.replace(manifest)
    return manifest


def load(folder: str | Path) -> list[Item]:
    root = Path(folder)
    items = []
    for line in (root / "manifest.jsonl").read_text().splitlines():
        r = json.loads(line)
        items.append(Item(r["seed"], r["caption"], r["style"], r["tempo"], r["key"], r["mode"],
                          root / "mix" / f"{r['seed']}.flac", root / "melody" / f"{r['seed']}.flac"))
    return items


def read(path: Path) -> np.ndarray:
    audio, sr = sf.read(path, dtype="float32")
    if sr != SAMPLE_RATE:
        raise ValueError(f"{path} is {sr} Hz, expected {SAMPLE_RATE}")
    return audio
