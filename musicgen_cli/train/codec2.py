"""Train the second codec (musicgen_cli.codec_v2): STFT-domain ConvNeXt encoder and Vocos-style decoder,
RVQ with EMA codebooks (train.codec.Quantizer), multi-resolution log-STFT losses and the score loss.

A run lives in one folder: ``run.json`` (the plan: total steps, batch, learning rate, model config; fixed
by the first call), ``checkpoint.pt`` (model, optimizer, step; every ``save_every`` steps), ``log.jsonl``.
The learning-rate schedule (linear warm-up, cosine to zero) depends only on the planned total, so a run
resumed by any later call, with ``stop_at`` anywhere, follows the same curve. ``export`` writes the
runtime folder (config.json + codec.pt).
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from ..codec_v2 import BundledCodec, CodecConfig
from ..data import dataset as ds
from ..data.score import roll_of_seed
from .codec import MelLoss, Quantizer
from .common import Checkpointer, log_line, plan
from .losses import SpectralLoss, flux_loss, score_loss

WARMUP_AE = 300  # steps of plain autoencoding before the codebooks are seeded from the latents
WARMUP_LR = 500
PLAN_KEYS = ("total_steps", "batch", "seconds", "lr", "seed", "score_weight", "config")


def load_pieces(folder: str | Path, limit: int | None = None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Every mix of a dataset folder and its piano roll (musicgen_cli.data.score), frame-aligned."""
    audio, rolls = [], []
    for item in ds.load(folder)[:limit]:
        wav = ds.read(item.mix)
        frames = len(wav) // 640
        audio.append(wav[: frames * 640])
        rolls.append(roll_of_seed(item.seed, len(wav) / ds.SAMPLE_RATE, frames))
    return audio, rolls


def crops(audio, rolls, batch: int, frames: int, rng: np.random.Generator, hop: int = 640):
    """Random frame-aligned crops: wav [B, 1, frames * hop], roll [B, frames, 14]."""
    wav = np.empty((batch, 1, frames * hop), np.float32)
    roll = np.empty((batch, frames, rolls[0].shape[1]), np.float32)
    for i in range(batch):
        k = int(rng.integers(len(audio)))
        start = int(rng.integers(len(rolls[k]) - frames + 1))
        wav[i, 0] = audio[k][start * hop : (start + frames) * hop]
        roll[i] = rolls[k][start : start + frames]
    return torch.from_numpy(wav), torch.from_numpy(roll)


def learning_rate(step: int, total: int, peak: float) -> float:
    return peak * min(1.0, (step + 1) / WARMUP_LR) * 0.5 * (1 + math.cos(math.pi * min(step / total, 1.0)))


def build(run: dict) -> BundledCodec:
    return BundledCodec(CodecConfig(**run["config"]))


def freeze_codes(model: BundledCodec) -> list[torch.nn.Parameter]:
    """From here on the codes are fixed (encoder, codebooks and score head stop learning; the EMA stops):
    an LM can learn from tokens made now while the decoder goes on learning to render them.
    Returns the parameters that still learn."""
    for part in (model.encoder, model.quantizer, model.aux_head):
        part.requires_grad_(False)
    return [p for p in model.decoder.parameters()]


def step_losses(model: BundledCodec, quantizer: Quantizer, spectral: SpectralLoss, mel: MelLoss, wav, roll,
                quantize: bool, frozen: bool = False):
    """One forward pass: dict of losses, and the codes (None before the codebooks exist)."""
    with torch.no_grad() if frozen else contextlib.nullcontext():
        latents = model.latents(wav)
    if quantize:
        q, codes, commit = quantizer(latents, update=model.training and not frozen)
        first = model.quantizer.books[0].embed[codes[0]].transpose(1, 2)
        first = latents + (first - latents).detach()  # straight through: the score head sees level 1
    else:
        q, codes, commit, first = latents, None, torch.zeros(()), latents
    rec = model.synthesize(q, wav.shape[-1])
    log_l1, conv = spectral(wav, rec)
    semitones, flux = spectral.semitones(wav, rec), flux_loss(mel, wav, rec)
    score = score_loss(model.aux_head(first.transpose(1, 2)).transpose(1, 2), roll)
    return {"log_stft": log_l1, "convergence": conv, "semitones": semitones, "flux": flux, "commit": commit,
            "score": score}, codes, rec


def train(data: str | Path, out: str | Path, total_steps: int, stop_at: int | None = None, batch: int = 8,
          seconds: float = 1.28, lr: float = 6e-4, seed: int = 0, score_weight: float = 1.0, save_every: int = 200,
          threads: int | None = 1, device: str = "cpu", config: CodecConfig | None = None,
          limit: int | None = None, freeze_codes_at: int = 0) -> Path:
    """Train (or resume) the run in ``out`` up to ``stop_at`` (default: the planned total); returns out.
    From step ``freeze_codes_at`` (0: never) only the decoder learns (``freeze_codes``)."""
    if threads:
        torch.set_num_threads(threads)
    out = Path(out)
    run = plan(out, total_steps=total_steps, batch=batch, seconds=seconds, lr=lr, seed=seed,
               score_weight=score_weight, freeze_codes_at=freeze_codes_at, config=asdict(config or CodecConfig()))
    torch.manual_seed(run["seed"])
    model = build(run).to(device)
    params = [p for n, p in model.named_parameters()]
    opt = torch.optim.AdamW(params, lr=run["lr"], betas=(0.8, 0.99), weight_decay=0.01)
    ckpt = Checkpointer(out, model, opt)
    step = ckpt.resume()
    audio, rolls = load_pieces(data, limit)
    rng = np.random.default_rng([run["seed"], step])
    quantizer, spectral = Quantizer(model, model.config.num_codebooks), SpectralLoss().to(device)
    mel = MelLoss(scales=(1024,)).to(device)
    frames = int(round(run["seconds"] * model.config.frame_rate))
    end = min(stop_at or run["total_steps"], run["total_steps"])
    model.train()
    t0, done = time.time(), 0
    frozen = False
    while step < end:
        if not frozen and 0 < run.get("freeze_codes_at", 0) <= step:
            params, frozen = freeze_codes(model), True
        wav, roll = (t.to(device) for t in crops(audio, rolls, run["batch"], frames, rng))
        losses, codes, _ = step_losses(model, quantizer, spectral, mel, wav, roll, quantize=step >= WARMUP_AE,
                                       frozen=frozen)
        loss = (losses["log_stft"] + losses["convergence"] + losses["semitones"] + losses["flux"]
                + 0.25 * losses["commit"]
                + run["score_weight"] * losses["score"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        for g in opt.param_groups:
            g["lr"] = learning_rate(step, run["total_steps"], run["lr"])
        opt.step()
        step, done = step + 1, done + 1
        if step % 25 == 0 or step == end:
            log_line(out, step=step, **{k: v.item() for k, v in losses.items()},
                     distinct_codes=[len(c.unique()) for c in codes] if codes is not None else [],
                     lr=opt.param_groups[0]["lr"], s_per_step=(time.time() - t0) / done)
            t0, done = time.time(), 0
        if step % save_every == 0 or step == end:
            ckpt.save(step)
    return out


def load_run(out: str | Path) -> tuple[BundledCodec, int]:
    """The run's latest checkpoint as an eval-mode codec, and its step."""
    out = Path(out)
    model = build(json.loads((out / "run.json").read_text()))
    state = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])
    return model.eval(), int(state["step"])


def export(out: str | Path, folder: str | Path, half: bool = False) -> Path:
    """Write the runtime folder (config.json, codec.pt) from the run's latest checkpoint."""
    model, step = load_run(out)
    print(f"exporting step {step}", flush=True)
    return model.save(folder, half=half)
