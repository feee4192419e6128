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
from .common import Checkpointer, log_line

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


def loss_on(model, batch: dict) -> torch.Tensor:
    """Mean cross-entropy over the pattern's real cells (special cells are neither inputs to learn nor targets)."""
    codes = batch["codes"]
    b, k, t = codes.shape
    card = model.config.decoder.vocab_size
    delays = patterns.delays_for(k)
    seq, _ = patterns.build(codes, delays, t, card)
    inputs, targets = seq[:, :, :-1], seq[:, :, 1:]
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                   input_features=batch["melody"], decoder_input_ids=inputs.reshape(b * k, -1)).logits
    logits = logits[:, -inputs.shape[2]:].reshape(b, k, inputs.shape[2], -1)
    targets = targets.masked_fill(targets == card, -100)
    return F.cross_entropy(logits.flatten(0, 2), targets.flatten(), ignore_index=-100)


def train(tokens_file: str | Path, codec_folder: str | Path, out: str | Path, steps: int, batch: int = 8,
          lr: float = 1e-3, seed: int = 0, vocab_size: int = 400, layers: int = 4, dim: int = 256,
          save_every: int = 100, threads: int | None = None, device: str = "cpu") -> Path:
    """Train (or resume) in ``out``: ``out/spiece.model`` once, then checkpoints; returns ``out``."""
    from transformers import AutoTokenizer

    if threads:
        torch.set_num_threads(threads)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tokens = torch.load(tokens_file, weights_only=True)
    tok_dir = out / "tokenizer"
    if not (tok_dir / "spiece.model").exists():
        text.write_tokenizer(tok_dir, text.train_tokenizer(tokens["captions"], vocab_size))
    tokenizer = AutoTokenizer.from_pretrained(str(tok_dir))
    torch.manual_seed(seed)
    hparams = {"dim": dim, "layers": layers}
    (out / "hparams.json").write_text(json.dumps(hparams) + "\n")
    model = build_model(codec_folder, len(tokenizer), **hparams).to(device)
    params = [p for n, p in model.named_parameters() if not n.startswith("audio_encoder.")]
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.95), weight_decay=0.01)
    ckpt = Checkpointer(out, model, opt)
    step = ckpt.resume()
    batches = Batches(tokens, tokenizer, np.random.default_rng([seed, step]))
    model.train()
    t0, losses = time.time(), []
    while step < steps:
        loss = loss_on(model, {k: v.to(device) for k, v in batches(batch).items()})
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        for g in opt.param_groups:
            g["lr"] = lr * min(1.0, (step + 1) / 200) * (0.1 + 0.45 * (1 + math.cos(math.pi * min(step / steps, 1.0))))
        opt.step()
        step += 1
        losses.append(loss.item())
        if step % 10 == 0 or step == steps:
            log_line(out, step=step, loss=float(np.mean(losses)), s_per_step=(time.time() - t0) / len(losses))
            t0, losses = time.time(), []
        if step % save_every == 0 or step == steps:
            ckpt.save(step)
    model.eval()
    return out
