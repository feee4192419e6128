"""Tiny random MusicGen checkpoints, built at test time (no model hub here).

Helpers, not tests:

- ``make_tokenizer_files(folder)``: a tiny T5-style sentencepiece tokenizer (``spiece.model`` +
  ``tokenizer.json`` + ``tokenizer_config.json``) that ``AutoTokenizer.from_pretrained`` loads offline
  without protobuf / tiktoken.
- ``make_hf_checkpoint(folder, ...)``: a ``MusicgenForConditionalGeneration`` folder in the Hugging Face
  layout (config.json, model.safetensors, generation_config.json, preprocessor_config.json, tokenizer files);
  ``melody=True``: a ``MusicgenMelodyForConditionalGeneration`` folder (chroma preprocessor_config.json).
- ``make_audiocraft_checkpoint(hf_folder, out_folder)``: the same LM weights in audiocraft's layout
  (``state_dict.bin`` + ``compression_state_dict.bin``); see tests/AUDIOCRAFT_FORMAT.md.
- ``make_hub_cache(cache_dir, repo_id, source_folder)``: a huggingface_hub cache entry for offline lookup;
  ``make_t5_folder`` / ``make_encodec_folder`` extract the text encoder (as ``t5-base``) and the codec
  (as ``facebook/encodec_32khz``) that audiocraft-layout checkpoints name; ``make_audiocraft_hub_cache``
  puts all three into one cache.

All weights are deterministic for a given seed, and every LM weight is exactly representable in float16,
so an audiocraft file stored as float16 (as released files probably are) holds the same numbers.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import shutil
from pathlib import Path

import torch
import yaml

from musicgen_cli.train import text
from musicgen_cli.train.export import save_hf_folder
from musicgen_cli.train.lm import decoder_config_kwargs

# --------------------------------------------------------------------------------------------- tokenizer

_SENTENCES = [
    "lo-fi hip hop beat with mellow piano chords and vinyl crackle",
    "upbeat electronic dance music with a heavy bass drop at 128 bpm",
    "calm acoustic guitar melody for a rainy sunday afternoon",
    "epic orchestral soundtrack with soaring strings, brass and a big choir",
    "80s synthwave with gated reverb drums and a driving arpeggio",
    "smooth jazz trio: upright bass, brushed snare and a warm saxophone solo",
    "ambient drone with slowly evolving pads and distant bells",
    "aggressive heavy metal riff with double kick drums and distorted guitars",
    "funky disco groove with slap bass, wah guitar and four on the floor",
    "reggae tune with offbeat skank guitar and a deep dub bassline",
    "classical string quartet in a minor key, slow and melancholic",
    "cheerful ukulele song with whistling and hand claps",
    "dark techno track, pounding kick, hypnotic acid synth line",
    "bossa nova with nylon guitar, soft vocals and light percussion",
    "cinematic trailer music building to a massive climax",
    "country ballad with pedal steel, fiddle and a slow shuffle",
    "drum and bass at 174 bpm with chopped amen breaks",
    "traditional irish folk jig with tin whistle and bodhran",
    "relaxing spa music with flute, harp and ocean waves",
    "video game chiptune melody, 8-bit square waves, fast tempo",
    "blues shuffle in E with harmonica and an overdriven electric guitar",
    "k-pop dance track with bright synths and punchy drums",
    "meditative indian raga on sitar with tabla accompaniment",
    "minimal piano piece, sparse notes, lots of space and sustain pedal",
    "trap beat with rolling hi-hats, 808 bass and dark bells",
    "gospel choir with hammond organ and joyful clapping",
    "latin salsa band with congas, timbales, piano montuno and horns",
    "psychedelic rock jam with fuzzy guitar and swirling organ",
    "baroque harpsichord fugue, intricate counterpoint",
    "happy children's song with xylophone and glockenspiel",
    "dubstep wobble bass with half-time drums",
    "japanese city pop with electric piano and slap bass",
    "afrobeat groove with polyrhythmic percussion and horn stabs",
    "tense horror soundscape, dissonant strings and low rumble",
    "marching band with snare drums, tubas and trumpets",
    "romantic waltz for solo violin and piano in three four time",
    "punk rock song, fast power chords, shouted chorus",
    "chillout house with deep chords, soft vocal chops and shakers",
    "medieval music with lute, recorder and frame drum",
    "sad cello solo, expressive vibrato, very slow",
]

_TOKENIZER_VOCAB_SIZE = 160


@functools.lru_cache(maxsize=None)
def _spiece_model() -> bytes:
    """Train (once per process) a tiny T5-style unigram sentencepiece model; deterministic."""
    return text.train_tokenizer(_SENTENCES, _TOKENIZER_VOCAB_SIZE)


def tokenizer_vocab_size() -> int:
    """Number of ids the tiny tokenizer can produce (= the text encoder's vocab_size)."""
    return text.vocab_size(_spiece_model())


def make_tokenizer_files(folder: Path) -> None:
    """Write spiece.model, tokenizer.json and tokenizer_config.json (tokenizer_class T5Tokenizer) into folder."""
    text.write_tokenizer(folder, _spiece_model())


# --------------------------------------------------------------------------------------- HF checkpoint

SAMPLE_RATE = 32000
FRAME_RATE = 50
N_Q_MONO = 4
NUM_CHROMA = 12  # melody: chroma bins (MusicgenMelodyConfig.num_chroma)
CHROMA_LENGTH = 235  # melody: chroma frames in the decoder prefix (MusicgenMelodyConfig.chroma_length)


def _round_to_half(model: torch.nn.Module) -> None:
    """Make every floating parameter / codec codebook buffer exactly float16-representable (kept float32).
    The decoder's sinusoidal position table is left alone (it is recomputed on load, never saved)."""
    with torch.no_grad():
        tensors = list(model.parameters())
        tensors += [b for n, b in model.named_buffers() if "embed_positions" not in n]
        for t in tensors:
            if t.is_floating_point():
                t.copy_(t.half().float())


# Melody only (the decoder sees text and chroma as a 235 + text-length prefix of its own sequence, not
# through cross-attention): with the plain scales below attention spreads almost evenly over that prefix and
# the conditioning barely moves the logits (first greedy step: chroma / text change them by ~0.05 / ~0.01 of
# their std; two prompts could give identical codes). Larger projections and peakier self-attention (q/k)
# bring that to ~0.2 / ~0.15 while greedy decoding still wanders (see test_melody_greedy_generation_varies).
MELODY_PROJ_STD = 1.0  # enc_to_dec_proj and audio_enc_to_dec_proj weights
MELODY_QK_STD = 0.5  # decoder self-attention q_proj / k_proj weights


def _reinit_decoder(model, gen: torch.Generator) -> None:
    """Non-trivial random weights for the LM, enc_to_dec_proj and (melody) audio_enc_to_dec_proj so greedy
    decoding varies.

    Scales were picked by a sweep: big token embeddings (std 4) and smallish linear weights (std 0.15)
    make greedy CFG decoding wander (30-45 distinct ids per codebook over 120 frames, no long runs);
    larger linear weights (>= 0.3) or small embeddings (<= 1) fall into fixed points (one id repeated).
    Melody models override a few of these (MELODY_PROJ_STD, MELODY_QK_STD). Parameters are drawn in the
    order decoder, enc_to_dec_proj, audio_enc_to_dec_proj."""

    def randn(shape):
        return torch.randn(shape, generator=gen)

    melody = hasattr(model, "audio_enc_to_dec_proj")
    with torch.no_grad():
        named = [("decoder." + n, p) for n, p in model.decoder.named_parameters()]
        named += [("enc_to_dec_proj." + n, p) for n, p in model.enc_to_dec_proj.named_parameters()]
        if melody:
            named += [("audio_enc_to_dec_proj." + n, p) for n, p in model.audio_enc_to_dec_proj.named_parameters()]
        for name, p in named:
            if "layer_norm" in name:
                if name.endswith("weight"):
                    p.copy_(1.0 + 0.1 * randn(p.shape))
                else:
                    p.copy_(0.1 * randn(p.shape))
            elif "embed_tokens" in name:
                p.copy_(4.0 * randn(p.shape))
            elif name.endswith("bias"):
                p.copy_(0.1 * randn(p.shape))
            elif "lm_heads" in name:
                p.copy_(0.5 * randn(p.shape))
            elif melody and "enc_to_dec_proj" in name:
                p.copy_(MELODY_PROJ_STD * randn(p.shape))
            elif melody and name.endswith(("self_attn.q_proj.weight", "self_attn.k_proj.weight")):
                p.copy_(MELODY_QK_STD * randn(p.shape))
            else:  # linear weights: q/k/v/out, fc1/fc2, enc_to_dec_proj (plain)
                p.copy_(0.15 * randn(p.shape))


def _init_codec_codebooks(codec, gen: torch.Generator) -> None:
    """EnCodec codebooks start as zeros in transformers; fill them from encoder outputs of random audio
    (k-means-like init: codebook q = random frames of the residual after codebooks < q)."""
    with torch.no_grad():
        t = torch.arange(SAMPLE_RATE, dtype=torch.float32) / SAMPLE_RATE  # 4 x 1 s = 200 frames
        freqs = 110.0 * (1 + torch.rand(4, 1, 1, generator=gen) * 7)
        audio = 0.3 * torch.sin(2 * torch.pi * freqs * t) + 0.1 * torch.randn(4, 1, t.numel(), generator=gen)
        emb = codec.encoder(audio)  # [B, D, T]
        residual = emb.transpose(1, 2).reshape(-1, emb.shape[1])  # [N, D]
        for layer in codec.quantizer.layers:
            cb = layer.codebook
            idx = torch.randperm(residual.shape[0], generator=gen)[: cb.codebook_size]
            if idx.numel() < cb.codebook_size:
                idx = idx.repeat(cb.codebook_size // idx.numel() + 1)[: cb.codebook_size]
            centroids = residual[idx] + 0.01 * residual.std() * torch.randn(
                cb.codebook_size, residual.shape[1], generator=gen)
            cb.embed.copy_(centroids)
            cb.embed_avg.copy_(centroids)
            cb.cluster_size.fill_(1.0)
            cb.inited.fill_(1.0)
            codes = cb.quantize(residual)
            residual = residual - cb.embed[codes]


@contextlib.contextmanager
def one_torch_thread():
    """Run tiny-tensor work on one intra-op thread (on this 2-core machine, 2 threads spin badly when
    other processes are busy: 10-100x slower). Restores the previous setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def make_hf_checkpoint(
    folder: Path,
    *,
    stereo: bool = False,
    melody: bool = False,
    seed: int = 0,
    decoder_layers: int = 2,
    hidden: int = 32,
    heads: int = 2,
    ffn: int = 64,
    codebook_size: int = 64,
    text_hidden: int = 24,
    top_k: int | None = 250,
) -> Path:
    """Build and save a tiny random MusicGen checkpoint (HF layout) into ``folder``.

    ``melody=False``: a ``MusicgenForConditionalGeneration`` (decoder cross-attends to the text states).
    ``melody=True``: a ``MusicgenMelodyForConditionalGeneration`` (no cross-attention: the decoder input is
    prefixed with ``chroma_length`` = 235 projected chroma frames (``num_chroma`` = 12, ``audio_enc_to_dec_proj``)
    followed by the projected text states), plus a chroma ``preprocessor_config.json`` as the hub folder has.

    Mono: 4 codebooks; stereo: 8 codebooks (L0,R0,L1,R1,...) with decoder audio_channels 2 and the mono
    codec. Special id (pad / bos / decoder_start) = ``codebook_size``. ``top_k=None`` leaves top_k out of
    generation_config.json (as the real hub files do; then transformers' default 50 applies)."""
    if text_hidden == hidden:
        raise ValueError("text_hidden must differ from hidden so that enc_to_dec_proj exists")
    if melody and hidden == NUM_CHROMA:
        raise ValueError(f"hidden must differ from {NUM_CHROMA} so that audio_enc_to_dec_proj exists")
    with one_torch_thread():
        return _make_hf_checkpoint(Path(folder), stereo=stereo, melody=melody, seed=seed,
                                   decoder_layers=decoder_layers, hidden=hidden, heads=heads, ffn=ffn,
                                   codebook_size=codebook_size, text_hidden=text_hidden, top_k=top_k)


def _text_config(text_hidden: int):
    """The tiny T5 text encoder (vocab = the tiny tokenizer's): 2 layers, 2 heads, feed-forward 48."""
    return text.t5_config(tokenizer_vocab_size(), text_hidden, layers=2, heads=2, ffn=48)


def _codec_config(codebook_size: int):
    """The tiny mono EnCodec: 32 kHz, hop 640 (50 frames/s), exactly 4 codebooks of ``codebook_size``."""
    from transformers import EncodecConfig

    nbits = (codebook_size - 1).bit_length()
    if 2 ** nbits != codebook_size:
        raise ValueError("codebook_size must be a power of 2")
    bandwidth = N_Q_MONO * nbits * FRAME_RATE / 1000.0  # kbps giving exactly 4 codebooks
    codec_cfg = EncodecConfig(
        target_bandwidths=[bandwidth],
        sampling_rate=SAMPLE_RATE,
        audio_channels=1,
        normalize=False,
        chunk_length_s=None,
        overlap=None,
        hidden_size=16,
        num_filters=4,
        num_residual_layers=1,
        upsampling_ratios=[8, 5, 4, 4],
        norm_type="weight_norm",
        kernel_size=7,
        last_kernel_size=7,
        residual_kernel_size=3,
        dilation_growth_rate=2,
        use_causal_conv=False,
        pad_mode="reflect",
        compress=2,
        num_lstm_layers=2,
        trim_right_ratio=1.0,
        codebook_size=codebook_size,
        codebook_dim=16,
        use_conv_shortcut=False,
    )
    assert codec_cfg.hop_length == 640 and codec_cfg.frame_rate == FRAME_RATE
    assert codec_cfg.num_quantizers == N_Q_MONO, codec_cfg.num_quantizers
    return codec_cfg


def _decoder_kwargs(*, codebook_size, decoder_layers, hidden, heads, ffn, channels) -> dict:
    """Keyword arguments shared by MusicgenDecoderConfig and MusicgenMelodyDecoderConfig."""
    return decoder_config_kwargs(card=codebook_size, layers=decoder_layers, dim=hidden, heads=heads, ffn=ffn,
                                 num_codebooks=N_Q_MONO * channels, channels=channels)


def _build_model(text_cfg, codec_cfg, dec_kwargs: dict, *, melody: bool):
    """The untrained model; only the config / model classes differ between plain and melody."""
    from transformers import (
        MusicgenConfig,
        MusicgenDecoderConfig,
        MusicgenForConditionalGeneration,
        MusicgenMelodyConfig,
        MusicgenMelodyDecoderConfig,
        MusicgenMelodyForConditionalGeneration,
    )

    if melody:
        config = MusicgenMelodyConfig(
            text_encoder=text_cfg, audio_encoder=codec_cfg, decoder=MusicgenMelodyDecoderConfig(**dec_kwargs),
            num_chroma=NUM_CHROMA, chroma_length=CHROMA_LENGTH)
        return MusicgenMelodyForConditionalGeneration(config).eval()
    config = MusicgenConfig(text_encoder=text_cfg, audio_encoder=codec_cfg, decoder=MusicgenDecoderConfig(**dec_kwargs))
    return MusicgenForConditionalGeneration(config).eval()


def _make_hf_checkpoint(folder: Path, *, stereo, melody, seed, decoder_layers, hidden, heads, ffn, codebook_size,
                        text_hidden, top_k) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)

    channels = 2 if stereo else 1
    dec_kwargs = _decoder_kwargs(codebook_size=codebook_size, decoder_layers=decoder_layers, hidden=hidden,
                                 heads=heads, ffn=ffn, channels=channels)
    model = _build_model(_text_config(text_hidden), _codec_config(codebook_size), dec_kwargs, melody=melody)

    _reinit_decoder(model, gen)
    _init_codec_codebooks(model.audio_encoder, gen)
    _round_to_half(model)

    save_hf_folder(model, folder, _spiece_model(), max_length=1500, top_k=top_k)
    return folder


# -------------------------------------------------------------------------------- audiocraft checkpoint

def _load_hf_state(hf_folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    state: dict[str, torch.Tensor] = {}
    files = sorted(Path(hf_folder).glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no safetensors in {hf_folder}")
    for f in files:
        state.update(load_file(str(f)))
    return state


def hf_to_audiocraft_lm_state(state: dict[str, torch.Tensor], num_layers: int, num_codebooks: int,
                              dtype: torch.dtype = torch.float16) -> dict[str, torch.Tensor]:
    """HF MusicGen state dict -> audiocraft LMModel state dict (key order as LMModel registers them)."""
    d = "decoder.model.decoder."
    out: dict[str, torch.Tensor] = {}
    out["condition_provider.conditioners.description.output_proj.weight"] = state["enc_to_dec_proj.weight"]
    out["condition_provider.conditioners.description.output_proj.bias"] = state["enc_to_dec_proj.bias"]
    for k in range(num_codebooks):
        out[f"emb.{k}.weight"] = state[f"{d}embed_tokens.{k}.weight"]
    for i in range(num_layers):
        src, dst = f"{d}layers.{i}.", f"transformer.layers.{i}."

        def qkv(attn):
            return torch.cat([state[f"{src}{attn}.{p}_proj.weight"] for p in "qkv"], dim=0)

        out[dst + "self_attn.in_proj_weight"] = qkv("self_attn")
        out[dst + "self_attn.out_proj.weight"] = state[src + "self_attn.out_proj.weight"]
        out[dst + "linear1.weight"] = state[src + "fc1.weight"]
        out[dst + "linear2.weight"] = state[src + "fc2.weight"]
        for a, b in (("norm1", "self_attn_layer_norm"), ("norm2", "final_layer_norm")):
            out[f"{dst}{a}.weight"] = state[f"{src}{b}.weight"]
            out[f"{dst}{a}.bias"] = state[f"{src}{b}.bias"]
        out[dst + "cross_attention.in_proj_weight"] = qkv("encoder_attn")
        out[dst + "cross_attention.out_proj.weight"] = state[src + "encoder_attn.out_proj.weight"]
        out[dst + "norm_cross.weight"] = state[src + "encoder_attn_layer_norm.weight"]
        out[dst + "norm_cross.bias"] = state[src + "encoder_attn_layer_norm.bias"]
    out["out_norm.weight"] = state[f"{d}layer_norm.weight"]
    out["out_norm.bias"] = state[f"{d}layer_norm.bias"]
    for k in range(num_codebooks):
        out[f"linears.{k}.weight"] = state[f"decoder.lm_heads.{k}.weight"]
    return {k: v.detach().to(dtype).contiguous().clone() for k, v in out.items()}


def audiocraft_cfg(*, dim: int, num_heads: int, num_layers: int, hidden_scale, card: int, n_q: int,
                   stereo: bool, t5_name: str = "t5-base") -> dict:
    """A trimmed copy of a released MusicGen 'xp.cfg' (hydra config), tiny sizes filled in."""
    delays = [0, 0, 1, 1, 2, 2, 3, 3] if stereo else [0, 1, 2, 3]
    return {
        "device": "cuda",
        "dtype": "float32",
        "autocast": True,
        "autocast_dtype": "float16",
        "seed": 2036,
        "efficient_attention_backend": "torch",
        "solver": "musicgen",
        "sample_rate": SAMPLE_RATE,
        "channels": 2 if stereo else 1,
        "compression_model_checkpoint": "//pretrained/facebook/encodec_32khz",
        "compression_model_n_q": None,
        "tokens": {"padding_with_special_token": False},
        "interleave_stereo_codebooks": {"use": stereo, "per_timestep": False},
        "dataset": {
            "batch_size": 192,
            "num_workers": 10,
            "segment_duration": 30,
            "min_segment_ratio": 0.8,
            "return_info": True,
            "train": {"num_samples": 1000000, "merge_text_p": 0.25, "drop_desc_p": 0.5, "drop_other_p": 0.5},
            "valid": {"num_samples": 10000},
            "generate": {"num_samples": 50},
        },
        "generate": {
            "every": 25,
            "num_workers": 5,
            "path": "samples",
            "audio": {"format": "wav", "strategy": "loudness", "sample_rate": "${sample_rate}",
                      "loudness_headroom_db": 14},
            "lm": {"prompted_samples": True, "unprompted_samples": True, "gen_gt_samples": False,
                   "prompt_duration": None, "gen_duration": None, "remove_prompts": False,
                   "use_sampling": True, "temp": 1.0, "top_k": 250, "top_p": 0.0},
        },
        "lm_model": "transformer_lm",
        "codebooks_pattern": {
            "modeling": "delay",
            "delay": {"delays": delays, "flatten_first": 0, "empty_initial": 0},
            "unroll": {"flattening": [0, 1, 2, 3], "delays": [0, 0, 0, 0]},
            "music_lm": {"group_by": 2},
            "coarse_first": {"delays": [0, 0, 0]},
        },
        "transformer_lm": {
            "dim": dim,
            "num_heads": num_heads,
            "num_layers": num_layers,
            "hidden_scale": hidden_scale,
            "n_q": n_q,
            "card": card,
            "dropout": 0.0,
            "emb_lr": None,
            "activation": "gelu",
            "norm_first": True,
            "bias_ff": False,
            "bias_attn": False,
            "bias_proj": False,
            "past_context": None,
            "causal": True,
            "custom": False,
            "memory_efficient": True,
            "attention_as_float32": False,
            "layer_scale": None,
            "positional_embedding": "sin",
            "xpos": False,
            "checkpointing": "none",
            "weight_init": "gaussian",
            "depthwise_init": "current",
            "zero_bias_init": True,
            "norm": "layer_norm",
            "cross_attention": False,
            "qk_layer_norm": False,
            "qk_layer_norm_cross": False,
            "attention_dropout": None,
            "kv_repeat": 1,
            "two_step_cfg": False,
        },
        "classifier_free_guidance": {"training_dropout": 0.3, "inference_coef": 3.0},
        "attribute_dropout": {},
        "fuser": {
            "cross_attention_pos_emb": False,
            "cross_attention_pos_emb_scale": 1,
            "sum": [],
            "prepend": [],
            "cross": ["description"],
            "input_interpolate": [],
        },
        "conditioners": {
            "description": {
                "model": "t5",
                "t5": {"name": t5_name, "finetune": False, "word_dropout": 0.3, "normalize_text": False},
            },
        },
    }


def make_audiocraft_checkpoint(hf_folder: Path, out_folder: Path, *, dtype: torch.dtype = torch.float16,
                               with_version: bool = False) -> Path:
    """Convert a tiny HF checkpoint into audiocraft's layout in ``out_folder``:

    - ``state_dict.bin`` = torch.save({'best_state': lm_state, 'xp.cfg': <yaml str>}) (+ 'version',
      'exported' when ``with_version``, as non-legacy exports have; the 2023 releases lack them);
    - ``compression_state_dict.bin`` = {'pretrained': 'facebook/encodec_32khz', 'exported': True,
      'version': '1.3.0'} (audiocraft's pointer form).

    Both load with ``torch.load(..., weights_only=True)``. LM tensors are stored as ``dtype`` (lossless:
    the HF weights are float16-exact)."""
    hf_folder, out_folder = Path(hf_folder), Path(out_folder)
    out_folder.mkdir(parents=True, exist_ok=True)
    config = json.loads((hf_folder / "config.json").read_text())
    if config.get("model_type") == "musicgen_melody":
        raise NotImplementedError("audiocraft layout of melody checkpoints is not implemented")
    dec = config["decoder"]
    n_q = int(dec["num_codebooks"])
    stereo = int(dec.get("audio_channels", 1)) == 2
    dim, ffn = int(dec["hidden_size"]), int(dec["ffn_dim"])
    hidden_scale = ffn // dim if ffn % dim == 0 else ffn / dim
    lm_state = hf_to_audiocraft_lm_state(_load_hf_state(hf_folder), int(dec["num_hidden_layers"]), n_q, dtype)
    cfg = audiocraft_cfg(dim=dim, num_heads=int(dec["num_attention_heads"]),
                         num_layers=int(dec["num_hidden_layers"]), hidden_scale=hidden_scale,
                         card=int(dec["vocab_size"]), n_q=n_q, stereo=stereo)
    pkg = {"best_state": lm_state, "xp.cfg": yaml.safe_dump(cfg, sort_keys=False, default_flow_style=False)}
    if with_version:
        pkg["version"] = "1.3.0"
        pkg["exported"] = True
    torch.save(pkg, out_folder / "state_dict.bin")
    torch.save({"pretrained": "facebook/encodec_32khz", "exported": True, "version": "1.3.0"},
               out_folder / "compression_state_dict.bin")
    return out_folder


# ------------------------------------------------------------------------------------------ hub cache

def _repo_folder_name(repo_id: str) -> str:
    return "models--" + repo_id.replace("/", "--")


def make_hub_cache(cache_dir: Path, repo_id: str, source_folder: Path) -> Path:
    """Lay out ``source_folder``'s files (recursively) as the ``main`` revision of model repo ``repo_id`` in a
    huggingface_hub cache at ``cache_dir`` (blobs + relative symlinks, or copies where symlinks fail).
    Returns the snapshot folder. Use with ``HF_HUB_OFFLINE=1`` and ``cache_dir=`` / ``HF_HUB_CACHE``."""
    cache_dir, source_folder = Path(cache_dir), Path(source_folder)
    files = sorted(p for p in source_folder.rglob("*") if p.is_file())
    listing = hashlib.sha1()
    blob_of: dict[Path, str] = {}
    for p in files:
        digest = hashlib.sha256(p.read_bytes()).hexdigest()
        blob_of[p] = digest
        listing.update(f"{p.relative_to(source_folder).as_posix()}\0{digest}\n".encode())
    commit = listing.hexdigest()  # 40 hex digits
    repo_dir = cache_dir / _repo_folder_name(repo_id)
    snapshot = repo_dir / "snapshots" / commit
    (repo_dir / "blobs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    for p in files:
        blob = repo_dir / "blobs" / blob_of[p]
        if not blob.exists():
            shutil.copyfile(p, blob)
        dst = snapshot / p.relative_to(source_folder)
        dst.parent.mkdir(parents=True, exist_ok=True)
        if dst.is_symlink() or dst.exists():
            dst.unlink()
        try:
            dst.symlink_to(os.path.relpath(blob, dst.parent))
        except OSError:
            shutil.copyfile(blob, dst)
    (repo_dir / "refs" / "main").write_text(commit)
    return snapshot


def _submodel_folder(hf_folder: Path, out_folder: Path, key: str, config_cls, architecture: str):
    """Write one sub-model's config (``config.json[key]``) to a standalone folder; return its config and
    its tensors (the ``key.`` prefix of the tiny checkpoint's weights, prefix dropped)."""
    hf_folder, out_folder = Path(hf_folder), Path(out_folder)
    out_folder.mkdir(parents=True, exist_ok=True)
    config = json.loads((hf_folder / "config.json").read_text())
    sub_cfg = config_cls(**{k: v for k, v in config[key].items() if k != "model_type"})
    sub_cfg.architectures = [architecture]
    sub_cfg.save_pretrained(str(out_folder))
    prefix = key + "."
    state = {k[len(prefix):]: v.contiguous() for k, v in _load_hf_state(hf_folder).items() if k.startswith(prefix)}
    return sub_cfg, state


def make_t5_folder(hf_folder: Path, out_folder: Path) -> Path:
    """The tiny checkpoint's text encoder as a standalone T5 folder (T5EncoderModel weights, T5Config,
    tokenizer files), i.e. what audiocraft's ``T5EncoderModel.from_pretrained('t5-base')`` /
    ``T5Tokenizer.from_pretrained('t5-base')`` read."""
    from safetensors.torch import save_file
    from transformers import T5Config

    _, state = _submodel_folder(hf_folder, out_folder, "text_encoder", T5Config, "T5EncoderModel")
    if "encoder.embed_tokens.weight" in state and "shared.weight" not in state:
        state["shared.weight"] = state["encoder.embed_tokens.weight"]
    state.pop("encoder.embed_tokens.weight", None)  # tied to shared.weight
    save_file(state, str(Path(out_folder) / "model.safetensors"), metadata={"format": "pt"})
    make_tokenizer_files(Path(out_folder))
    return Path(out_folder)


def make_encodec_folder(hf_folder: Path, out_folder: Path) -> Path:
    """The tiny checkpoint's codec as a standalone EnCodec folder (what ``facebook/encodec_32khz`` holds)."""
    from safetensors.torch import save_file
    from transformers import EncodecConfig, EncodecFeatureExtractor

    codec_cfg, state = _submodel_folder(hf_folder, out_folder, "audio_encoder", EncodecConfig, "EncodecModel")
    save_file(state, str(Path(out_folder) / "model.safetensors"), metadata={"format": "pt"})
    EncodecFeatureExtractor(feature_size=1, sampling_rate=codec_cfg.sampling_rate, padding_value=0.0,
                            padding_side="right", return_attention_mask=True).save_pretrained(str(out_folder))
    return Path(out_folder)


def make_audiocraft_hub_cache(cache_dir: Path, hf_folder: Path, work_dir: Path,
                              repo_id: str = "facebook/musicgen-small") -> dict[str, Path]:
    """Everything an audiocraft-style load of ``repo_id`` needs, offline, in one hub cache:
    ``repo_id`` (state_dict.bin + compression_state_dict.bin, plus the HF files, as the real
    facebook/musicgen-* repos carry both layouts), ``t5-base`` and ``facebook/encodec_32khz``.
    Returns the snapshot folders by repo id."""
    work_dir = Path(work_dir)
    ac = make_audiocraft_checkpoint(hf_folder, work_dir / "audiocraft")
    combined = work_dir / "combined"
    combined.mkdir(parents=True, exist_ok=True)
    for src in list(Path(hf_folder).iterdir()) + list(ac.iterdir()):
        if src.is_file():
            shutil.copyfile(src, combined / src.name)
    return {
        repo_id: make_hub_cache(cache_dir, repo_id, combined),
        "t5-base": make_hub_cache(cache_dir, "t5-base", make_t5_folder(hf_folder, work_dir / "t5-base")),
        "facebook/encodec_32khz": make_hub_cache(
            cache_dir, "facebook/encodec_32khz", make_encodec_folder(hf_folder, work_dir / "encodec_32khz")),
    }
