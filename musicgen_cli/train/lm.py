"""Stage 3: the T5 text encoder and the delay-pattern LM, trained together on the codec's tokens.

The model is transformers' ``MusicgenMelodyForConditionalGeneration`` (the [chroma | text] prefix
variant), so one model does both text-only and melody-conditioned generation and its folder loads like
facebook/musicgen-melody. Each example is a ``WINDOW_S`` crop of a piece: its tokens in the delay
pattern, its caption, and the chroma of the melody instrument alone over the same span. Guidance
needs the unconditional cases too: the caption is dropped (zero states) with probability
``P_NO_TEXT`` and the chroma (-> the "no melody" chroma, one-hot at bin 0) with ``P_NO_MELODY``.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .. import chroma, codec_v2, patterns
from ..data import dataset as ds
from . import text
from .common import Checkpointer, log_line, plan

WINDOW_S = 10.0  # the model's window: generation past it continues window by window
FRAME_RATE = 50
FRAMES = int(WINDOW_S * FRAME_RATE)
CHROMA_LENGTH = 1 + int(WINDOW_S * chroma.SAMPLE_RATE) // chroma.HOP  # what api.py computes per window
ALIGN = 32  # crops start on multiples of 32 frames = 5 chroma hops, so both grids line up
CHROMA_PER_ALIGN = ALIGN * ds.SAMPLE_RATE // FRAME_RATE // chroma.HOP
P_NO_TEXT, P_NO_MELODY = 0.2, 0.5


def codec_config(codec_folder: str | Path) -> dict:
    return json.loads((Path(codec_folder) / "config.json").read_text())


def load_codec(codec_folder: str | Path):
    """The codec a stage folder holds: the second codec (codec_v2: config.json + codec.pt) or an
    EnCodec folder (the first codec: Hugging Face layout). Both encode [B, 1, S] -> codes [B, K, T]."""
    if codec_config(codec_folder).get("model_type") == codec_v2.MODEL_TYPE:
        return codec_v2.BundledCodec.load(codec_folder)
    from ..checkpoints import read_codec

    return read_codec(Path(codec_folder))


@torch.inference_mode()
def tokenize(data: str | Path, codec_folder: str | Path, out_file: str | Path) -> Path:
    """Every piece's codes [K, T] (int16), melody chroma [F, 12] (uint8 one-hot) and caption, in one file."""
    codec = load_codec(codec_folder)
    codes, chromas, captions = [], [], []
    for item in ds.load(data):
        wav = torch.from_numpy(ds.read(item.mix))[None, None]
        codes.append(codec.encode(wav)[0].to(torch.int16))
        chromas.append(chroma.chroma(torch.from_numpy(ds.read(item.melody))[None])[0].to(torch.uint8))
        captions.append(item.caption)
    out_file = Path(out_file)
    tmp = out_file.with_suffix(".tmp")
    torch.save({"codes": torch.stack(codes), "chroma": torch.stack(chromas), "captions": captions}, tmp)
    tmp.replace(out_file)
    return out_file


def decoder_config_kwargs(*, card: int, layers: int, dim: int, heads: int, ffn: int, num_codebooks: int,
                          channels: int = 1, dropout: float = 0.0) -> dict:
    """A MusicGen decoder config (plain or melody) as the published ones have it: GELU, sinusoidal
    positions up to 2048, untied heads, the special token = ``card`` (one past the last code)."""
    return dict(vocab_size=card, max_position_embeddings=2048, num_hidden_layers=layers, ffn_dim=ffn,
                num_attention_heads=heads, hidden_size=dim, layerdrop=0.0, use_cache=True, activation_function="gelu",
                dropout=dropout, attention_dropout=0.0, activation_dropout=0.0, initializer_factor=0.02,
                scale_embedding=False, num_codebooks=num_codebooks, audio_channels=channels, pad_token_id=card,
                bos_token_id=card, eos_token_id=None, tie_word_embeddings=False)


def build_model(codec_folder: str | Path, vocab: int, *, dim: int = 256, layers: int = 4, heads: int = 4,
                text_dim: int = 128, text_layers: int = 2, dropout: float = 0.1):
    """An untrained melody-capable MusicGen around the trained codec (whose weights it takes)."""
    from transformers import (EncodecConfig, EncodecModel, MusicgenMelodyConfig, MusicgenMelodyDecoderConfig,
                              MusicgenMelodyForConditionalGeneration)

    second = codec_config(codec_folder).get("model_type") == codec_v2.MODEL_TYPE
    if second:  # transformers' model wants an EnCodec: a tiny stand-in, never run; export puts ours in its place
        v2 = codec_v2.BundledCodec.load(codec_folder).config
        codec_cfg = EncodecConfig(codebook_size=v2.codebook_size, sampling_rate=v2.sampling_rate,
                                  target_bandwidths=[v2.num_codebooks * math.ceil(math.log2(v2.codebook_size)) * 50 / 1000],
                                  num_filters=2, hidden_size=8, codebook_dim=8, upsampling_ratios=[8, 5, 4, 4])
    else:
        codec_cfg = EncodecConfig.from_pretrained(str(codec_folder))
    card = codec_cfg.codebook_size
    decoder = MusicgenMelodyDecoderConfig(**decoder_config_kwargs(
        card=card, layers=layers, dim=dim, heads=heads, ffn=4 * dim, num_codebooks=codec_cfg.num_quantizers,
        dropout=dropout))
    config = MusicgenMelodyConfig(text_encoder=text.t5_config(vocab, text_dim, text_layers, 4, 4 * text_dim),
                                  audio_encoder=codec_cfg, decoder=decoder, num_chroma=chroma.NUM_CHROMA,
                                  chroma_length=CHROMA_LENGTH)
    model = MusicgenMelodyForConditionalGeneration(config)
    if not second:
        model.audio_encoder.load_state_dict(EncodecModel.from_pretrained(str(codec_folder)).state_dict())
    return model


class Batches:
    """Random WINDOW_S crops with their captions and melody chroma, with guidance dropout."""

    def __init__(self, tokens: dict, tokenizer, rng: np.random.Generator):
        self.codes, self.chroma, self.captions = tokens["codes"].long(), tokens["chroma"].float(), tokens["captions"]
        self.tokenizer, self.rng = tokenizer, rng
        self.starts = (self.codes.shape[2] - FRAMES) // ALIGN + 1

    def __call__(self, batch: int) -> dict:
        rows = self.rng.integers(len(self.codes), size=batch)
        starts = self.rng.integers(self.starts, size=batch)
        codes = torch.stack([self.codes[r, :, s * ALIGN : s * ALIGN + FRAMES] for r, s in zip(rows, starts)])
        melody = torch.stack([chroma.fit_length(self.chroma[r, s * CHROMA_PER_ALIGN :][None], CHROMA_LENGTH)[0]
                              for r, s in zip(rows, starts)])
        no_melody = torch.from_numpy(self.rng.random(batch) < P_NO_MELODY)
        melody[no_melody] = chroma.null_chroma(int(no_melody.sum()), CHROMA_LENGTH)
        tok = self.tokenizer([self.captions[r] for r in rows], padding=True, return_tensors="pt")
        keep_text = torch.from_numpy(self.rng.random(batch) >= P_NO_TEXT)
        return {"codes": codes, "melody": melody, "input_ids": tok["input_ids"],
                "attention_mask": tok["attention_mask"] * keep_text[:, None]}

    def fixed(self, count: int, batch: int) -> list[dict]:
        """The same ``count`` batches on every call (for a held-out loss that can be compared over steps)."""
        rng, self.rng = self.rng, np.random.default_rng(0)
        try:
            return [self(batch) for _ in range(count)]
        finally:
            self.rng = rng


def loss_on(model, batch: dict, first_weight: float = 1.0) -> torch.Tensor:
    """Cross-entropy over the pattern's real cells (special cells are neither inputs to learn nor targets),
    codebook 0's cells weighted ``first_weight`` (the codebook that carries the notes)."""
    codes = batch["codes"]
    b, k, t = codes.shape
    card = model.config.decoder.vocab_size
    delays = patterns.delays_for(k)
    seq, _ = patterns.build(codes, delays, t, card)
    inputs, targets = seq[:, :, :-1], seq[:, :, 1:]
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                   input_features=batch["melody"], decoder_input_ids=inputs.reshape(b * k, -1)).logits
    logits = logits[:, -inputs.shape[2]:].reshape(b, k, inputs.shape[2], -1)
    real = targets != card
    ce = F.cross_entropy(logits.flatten(0, 2), targets.masked_fill(~real, 0).flatten(), reduction="none")
    weight = real * torch.tensor([first_weight] + [1.0] * (k - 1), device=codes.device)[None, :, None]
    return (ce.view_as(weight) * weight).sum() / weight.sum()


def load_tokens(files: list[str | Path]) -> dict:
    """One or more tokens files (e.g. one per dataset folder) as one set of pieces."""
    parts = [torch.load(f, weights_only=True) for f in files]
    return {"codes": torch.cat([p["codes"] for p in parts]), "chroma": torch.cat([p["chroma"] for p in parts]),
            "captions": [c for p in parts for c in p["captions"]]}


def learning_rate(step: int, total: int, peak: float) -> float:
    """Linear warm-up over 200 steps, then cosine from the peak down to a tenth of it at the planned total."""
    return peak * min(1.0, (step + 1) / 200) * (0.1 + 0.45 * (1 + math.cos(math.pi * min(step / total, 1.0))))


@torch.no_grad()
def heldout_loss(model, batches: "Batches", device: str, count: int = 4, batch: int = 8) -> float:
    """Mean loss over ``count`` fixed held-out batches (dropout off, guidance dropout as in training)."""
    model.eval()
    losses = [loss_on(model, {k: v.to(device) for k, v in b.items()}).item() for b in batches.fixed(count, batch)]
    model.train()
    return float(np.mean(losses))


def train(tokens_files: list[str | Path], codec_folder: str | Path, out: str | Path, total_steps: int,
          stop_at: int | None = None, batch: int = 8, lr: float = 1e-3, seed: int = 0, vocab_size: int = 400,
          layers: int = 4, dim: int = 256, first_weight: float = 1.0, heldout: str | Path | None = None,
          save_every: int = 100, threads: int | None = None, device: str = "cpu") -> Path:
    """Train (or resume) the run in ``out`` up to ``stop_at`` (default: the planned total): ``out/run.json``
    fixes the plan (total steps, batch, lr, sizes) on the first call, ``out/tokenizer`` is trained once on
    the captions, then checkpoints; returns ``out``."""
    from transformers import AutoTokenizer

    if threads:
        torch.set_num_threads(threads)
    out = Path(out)
    run = plan(out, total_steps=total_steps, batch=batch, lr=lr, seed=seed, vocab_size=vocab_size,
               first_weight=first_weight, config={"dim": dim, "layers": layers})
    tokens = load_tokens(tokens_files if isinstance(tokens_files, (list, tuple)) else [tokens_files])
    tok_dir = out / "tokenizer"
    if not (tok_dir / "spiece.model").exists():
        text.write_tokenizer(tok_dir, text.train_tokenizer(tokens["captions"], run["vocab_size"]))
    tokenizer = AutoTokenizer.from_pretrained(str(tok_dir))
    torch.manual_seed(run["seed"])
    (out / "hparams.json").write_text(json.dumps(run["config"]) + "\n")
    model = build_model(codec_folder, len(tokenizer), **run["config"]).to(device)
    params = [p for n, p in model.named_parameters() if not n.startswith("audio_encoder.")]
    opt = torch.optim.AdamW(params, lr=run["lr"], betas=(0.9, 0.95), weight_decay=0.01)
    ckpt = Checkpointer(out, model, opt)
    step = ckpt.resume()
    batches = Batches(tokens, tokenizer, np.random.default_rng([run["seed"], step]))
    held = Batches(load_tokens([heldout]), tokenizer, np.random.default_rng(0)) if heldout else None
    end = min(stop_at or run["total_steps"], run["total_steps"])
    model.train()
    t0, losses = time.time(), []
    while step < end:
        loss = loss_on(model, {k: v.to(device) for k, v in batches(run["batch"]).items()}, run["first_weight"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        for g in opt.param_groups:
            g["lr"] = learning_rate(step, run["total_steps"], run["lr"])
        opt.step()
        step += 1
        losses.append(loss.item())
        if step % 10 == 0 or step == end:
            extra = {"heldout": heldout_loss(model, held, device)} if held and (step % save_every == 0 or step == end) else {}
            log_line(out, step=step, loss=float(np.mean(losses)), **extra, lr=opt.param_groups[0]["lr"],
                     s_per_step=(time.time() - t0) / len(losses))
            t0, losses = time.time(), []
        if step % save_every == 0 or step == end:
            ckpt.save(step)
    model.eval()
    return out
