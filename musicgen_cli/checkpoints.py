"""Find and read MusicGen checkpoints, safely: the Hugging Face folder layout and the audiocraft one.

Hugging Face layout: config.json (sub-configs text_encoder / audio_encoder / decoder), safetensors
weights (one file or shards with an index) or pytorch_model.bin, tokenizer files.
audiocraft layout: state_dict.bin {'best_state': LM tensors, 'xp.cfg': YAML} and
compression_state_dict.bin; T5 and EnCodec come from the hub cache by the names they give.
Pickled files are only ever read with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from . import codec_v2, configs, hub, registry
from .codec_v2 import BundledCodec
from .encodec import EnCodec
from .errors import MusicgenError
from .files import one_line
from .lm import LMConfig
from .t5 import T5Encoder
from .tokenizer import T5Tokenizer

AUDIOCRAFT_T5_NAMES = {"t5-base": ["t5-base", "google-t5/t5-base"]}
AUDIOCRAFT_CODEC = "facebook/encodec_32khz"


@dataclass
class Checkpoint:
    name: str
    folder: Path  # where it was read from (a hub-cache snapshot folder names its revision)
    lm_config: LMConfig
    lm_state: dict[str, torch.Tensor]
    text_encoder: T5Encoder
    tokenizer: T5Tokenizer
    codec: EnCodec
    max_duration: float = 30.0
    note: str | None = None  # for the user: what the default model became, and why


def resolve(model: str | None = None, melody: bool = False) -> tuple[str, Path, str | None]:
    """What --model names -> (name, folder, note). `model` is "bundled" (the model in this package),
    a checkpoint folder, a short name (small, melody, stereo-large, ...; registry.py) or a hub id,
    taken from the hub cache or downloaded into it. None is the default: the published model
    (small; melody for `melody`) when cached or downloadable, else the bundled one, with a note
    (one line for the user) saying so."""
    if model is None:
        default = registry.DEFAULT_MELODY_MODEL if melody else registry.DEFAULT_MODEL
        repo = registry.hub_id(default)
        folder = hub.cached(repo)
        if folder is not None:
            return default, folder, None
        try:
            return default, hub.download(repo), None
        except MusicgenError:
            name, folder, _ = resolve(registry.BUNDLED)
            why = "offline mode is on" if hub.offline() else "the hub cannot be reached"
            return name, folder, (f"using the bundled model: {default} is not cached and {why} "
                                  f"(`musicgen download {default}` fetches it)")
    path = Path(model).expanduser()
    if model == registry.BUNDLED and not path.exists():
        if not (registry.BUNDLED_FOLDER / "config.json").is_file():
            raise MusicgenError(f"the bundled model is missing from this installation ({registry.BUNDLED_FOLDER}); "
                                "reinstall musicgen or pass --model FOLDER")
        return model, registry.BUNDLED_FOLDER, None
    if path.exists():
        if not path.is_dir():
            raise MusicgenError(f"--model {model}: expected a checkpoint folder, got a file")
        return model, path, None
    repo = registry.hub_id(model)
    if repo is None and ("/" in model or model.startswith((".", "~"))):
        raise MusicgenError(f"model folder '{model}' does not exist")
    if repo is None:
        raise MusicgenError(f"model '{model}' is not a known name, a hub id or a folder{registry.suggestion(model)}")
    return model, hub.cached(repo) or hub.download(repo), None


def load(model: str | None = None, melody: bool = False) -> Checkpoint:
    """Read a checkpoint (see `resolve` for what `model` may be); its `note` says what the default became."""
    model, folder, note = resolve(model, melody)
    if (folder / "config.json").is_file():
        checkpoint = _load_hf(folder, model)
    elif (folder / "state_dict.bin").is_file():
        checkpoint = _load_audiocraft(folder, model)
    else:
        raise MusicgenError(f"'{model}' is not a MusicGen checkpoint: no config.json (Hugging Face layout) "
                            "or state_dict.bin (audiocraft layout) in it")
    checkpoint.note = note
    return checkpoint


# -- reading tensors -------------------------------------------------------------------------------


def _torch_load(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        if "weights_only" in str(e) or "Unsupported global" in str(e):
            raise MusicgenError(f"refusing to load {path}: it holds pickled Python objects, not only tensors")
        raise MusicgenError(f"cannot read {path}: the file is truncated or corrupt") from e


def _read_weights(folder: Path) -> dict[str, torch.Tensor]:
    """All tensors of a folder: model.safetensors or pytorch_model.bin (the latter read with
    weights_only), either one file or shards listed by their index."""
    from safetensors.torch import load_file

    for single in ("model.safetensors", "pytorch_model.bin"):
        index = folder / f"{single}.index.json"
        if index.is_file():
            files = _index_files(index)
            break
        if (folder / single).is_file():
            files = [single]
            break
    else:
        raise MusicgenError(f"no weights in {folder} (model.safetensors or pytorch_model.bin)")
    state = {}
    for name in files:
        if not (folder / name).is_file():
            raise MusicgenError(f"weights file {folder / name} is missing")
        if name.endswith(".bin"):
            state.update(_torch_load(folder / name))
            continue
        try:
            state.update(load_file(folder / name))
        except Exception as e:
            raise MusicgenError(f"cannot read {folder / name}: the file is truncated or corrupt") from e
    return state


def _with_prefix(state: dict, prefix: str) -> dict:
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def hf_to_lm_state(state: dict) -> dict[str, torch.Tensor]:
    """A Hugging Face MusicGen state dict -> our LM's tensors (same names, prefixes dropped)."""
    return {
        **{"enc_to_dec_proj." + k: v for k, v in _with_prefix(state, "enc_to_dec_proj.").items()},
        **{"audio_enc_to_dec_proj." + k: v for k, v in _with_prefix(state, "audio_enc_to_dec_proj.").items()},
        **{k: v for k, v in _with_prefix(state, "decoder.model.decoder.").items() if not k.startswith("embed_positions.")},
        **{"lm_heads." + k: v for k, v in _with_prefix(state, "decoder.lm_heads.").items()},
    }


def _index_files(index: Path) -> list[str]:
    """The shard files an index names; each must be a plain file name inside the model folder."""
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
        files = sorted(set(weight_map.values()))
        if not all(isinstance(f, str) for f in files):
            raise TypeError("a file name is not a string")
    except (ValueError, OSError, KeyError, TypeError, AttributeError) as e:
        raise MusicgenError(f"{index} is not a valid weights index ({one_line(e, 100)})") from e
    folder = index.parent.resolve()
    for name in files:
        if Path(name).is_absolute() or (folder / name).resolve().parent != folder:
            raise MusicgenError(f"{index} names {name!r}, outside the model folder; refusing to read it")
    return files


# -- building the text encoder, tokenizer and codec (ours: t5.py, tokenizer.py, encodec.py) -----------


def _meta(cls, config: dict, what: str, where: str = "the checkpoint's config") -> torch.nn.Module:
    """One of our modules (T5Encoder, EnCodec) from a Hugging Face config dict, built on the meta
    device (nothing allocated) and refused if its weights would pass configs.MAX_GIB."""
    try:
        cfg = cls.config_class.from_hf(config)
        with torch.device("meta"):
            module = cls(cfg)
    except (KeyError, TypeError, ValueError, AttributeError, ZeroDivisionError) as e:
        raise MusicgenError(f"the checkpoint's {what} config is malformed ({type(e).__name__}: "
                            f"{one_line(e, 120)})") from e
    configs.check_weights(configs.weights_bytes(module), what, where)
    return module


def _assign(module: torch.nn.Module, state: dict, what: str) -> torch.nn.Module:
    """The checkpoint's tensors put into a module built by `_meta` (after `hf_state` renames them;
    float32, as the model runs, whatever the file stores); a missing or unexpected tensor is a
    MusicgenError."""
    state = {k: v.float() if v.is_floating_point() else v for k, v in type(module).hf_state(state).items()}
    try:
        missing, unexpected = module.load_state_dict(state, strict=False, assign=True)
    except RuntimeError as e:  # a tensor of the wrong shape
        raise MusicgenError(f"the checkpoint's {what} weights do not match its config: {one_line(e, 200)}") from e
    if missing or unexpected:
        problem = f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}"
        raise MusicgenError(f"the checkpoint's {what} weights do not match its config ({problem})")
    return module.eval().requires_grad_(False)


def _text_encoder(config: dict, state: dict) -> T5Encoder:
    configs.check_sizes(config, configs.TEXT_ENCODER_LIMITS, "the text encoder's config")
    return _assign(_meta(T5Encoder, config, "text encoder"), state, "text encoder")


def _codec(config: dict, state: dict) -> EnCodec | BundledCodec:
    """Our EnCodec (the published models), or the bundled model's own codec (model_type
    musicgen_codec_v2, codec_v2.py, which checks its own config), answering the same encode/decode face."""
    if config.get("model_type") == codec_v2.MODEL_TYPE:
        try:
            return BundledCodec.from_state(config, state).requires_grad_(False)
        except (TypeError, ValueError, RuntimeError) as e:
            raise MusicgenError(f"the checkpoint's audio codec does not match its config ({one_line(e, 160)})") from e
    configs.check_sizes(config, configs.CODEC_LIMITS, "the audio codec's config")
    configs.check_list(config, *configs.STRIDES, "the audio codec's config")
    return _assign(_meta(EnCodec, config, "audio codec"), state, "audio codec")


def read_codec(folder: Path) -> EnCodec:
    """A Hugging Face EnCodec folder (config.json and weights), e.g. the first bundled codec's."""
    return _codec(configs.read_config(folder), _read_weights(folder))


def _tokenizer(folder: Path) -> T5Tokenizer:
    return T5Tokenizer.from_folder(folder)


def t5_folder_encoder(folder: Path) -> T5Encoder:
    """The encoder of a T5 checkpoint folder (t5-base holds the whole encoder-decoder: the decoder
    and its head are left out)."""
    state = {k: v for k, v in _read_weights(folder).items() if k.startswith(("shared.", "encoder."))}
    return _text_encoder(configs.read_config(folder), state)


# -- the two layouts -------------------------------------------------------------------------------


def hf_lm_config(dec: dict, text_dim: int, num_chroma: int = 0, chroma_length: int = 0) -> LMConfig:
    """The `decoder` part of a Hugging Face MusicGen config.json -> LMConfig (melody models: with
    the config's num_chroma and chroma_length)."""
    return LMConfig(
        dim=dec["hidden_size"],
        num_layers=dec["num_hidden_layers"],
        num_heads=dec["num_attention_heads"],
        ffn_dim=dec["ffn_dim"],
        num_codebooks=dec["num_codebooks"],
        card=dec["vocab_size"],
        text_dim=text_dim,
        channels=dec.get("audio_channels", 1),
        num_chroma=num_chroma,
        chroma_length=chroma_length,
    )


def _load_hf(folder: Path, name: str) -> Checkpoint:
    config = configs.read_config(folder)
    melody = config.get("model_type") == "musicgen_melody"
    if config.get("model_type") not in ("musicgen", "musicgen_melody") or "decoder" not in config:
        kind = config.get("model_type", "unknown")
        raise MusicgenError(f"'{name}' is not a MusicGen checkpoint (model_type: {kind})")
    configs.check_hf(config, name)  # and the parts' sizes on the meta device, before any weight is read
    text_encoder = _meta(T5Encoder, config["text_encoder"], "text encoder", f"'{name}': config.json")
    second = config["audio_encoder"].get("model_type") == codec_v2.MODEL_TYPE
    if second:
        codec_v2.checked_config(config["audio_encoder"])
    else:
        codec = _meta(EnCodec, config["audio_encoder"], "audio codec", f"'{name}': config.json")
    state = _read_weights(folder)
    lm_state = hf_to_lm_state(state)
    if "enc_to_dec_proj.weight" not in lm_state:
        raise MusicgenError(f"'{name}' is not a MusicGen checkpoint: its weights have no decoder/projection")
    if melody and "audio_enc_to_dec_proj.weight" not in lm_state:
        raise MusicgenError(f"'{name}' is a melody checkpoint without its chroma projection (audio_enc_to_dec_proj)")
    lm_config = hf_lm_config(
        config["decoder"],
        text_dim=lm_state["enc_to_dec_proj.weight"].shape[1],
        num_chroma=config.get("num_chroma", 12) if melody else 0,
        chroma_length=config.get("chroma_length", 235) if melody else 0,
    )
    codec_state = _with_prefix(state, "audio_encoder.")
    codec = _codec(config["audio_encoder"], codec_state) if second else _assign(codec, codec_state, "audio codec")
    return Checkpoint(
        name=name,
        folder=folder,
        lm_config=lm_config,
        lm_state=lm_state,
        text_encoder=_assign(text_encoder, _with_prefix(state, "text_encoder."), "text encoder"),
        tokenizer=_tokenizer(folder),
        codec=codec,
        max_duration=configs.window_seconds(folder, codec.frame_rate),
    )


_AUDIOCRAFT_RENAMES = [
    (r"^emb\.", "embed_tokens."),
    (r"^transformer\.layers\.", "layers."),
    (r"\.cross_attention\.", ".encoder_attn."),
    (r"\.linear1\.", ".fc1."),
    (r"\.linear2\.", ".fc2."),
    (r"\.norm1\.", ".self_attn_layer_norm."),
    (r"\.norm_cross\.", ".encoder_attn_layer_norm."),
    (r"\.norm2\.", ".final_layer_norm."),
    (r"^out_norm\.", "layer_norm."),
    (r"^linears\.", "lm_heads."),
    (r"^condition_provider\.conditioners\.description\.output_proj\.", "enc_to_dec_proj."),
]


def audiocraft_to_lm_state(best_state: dict) -> dict[str, torch.Tensor]:
    """audiocraft LM tensor names -> ours (= Hugging Face's); stacked in_proj [3*dim, dim] is split."""
    out = {}
    for key, value in best_state.items():
        for pattern, repl in _AUDIOCRAFT_RENAMES:
            key = re.sub(pattern, repl, key)
        if key.endswith(".in_proj_weight"):
            base = key[: -len("in_proj_weight")]
            for part, chunk in zip("qkv", value.chunk(3, dim=0)):
                out[f"{base}{part}_proj.weight"] = chunk
        else:
            out[key] = value
    return out


def _hub_folder(names: list[str], what: str) -> Path:
    """The first of `names` in the hub cache, else the last one downloaded (the canonical id)."""
    for repo in names:
        snapshot = hub.cached(repo)
        if snapshot is not None:
            return snapshot
    try:
        return hub.download(names[-1])
    except MusicgenError as e:
        raise MusicgenError(f"this audiocraft checkpoint needs {what} '{names[-1]}': {e}") from e


def _load_audiocraft(folder: Path, name: str) -> Checkpoint:
    package = _torch_load(folder / "state_dict.bin")
    if not isinstance(package, dict) or "best_state" not in package or "xp.cfg" not in package:
        raise MusicgenError(f"{folder / 'state_dict.bin'} is not an audiocraft MusicGen LM (no best_state / xp.cfg)")
    cfg = package["xp.cfg"]
    try:
        cfg = yaml.safe_load(cfg) if isinstance(cfg, str) else cfg
    except yaml.YAMLError as e:  # a python/object tag among them: safe_load refuses to build it
        raise MusicgenError(f"{folder / 'state_dict.bin'}: its xp.cfg is not plain YAML "
                            f"({one_line(e, 120)})") from e
    lm_cfg = cfg.get("transformer_lm") if isinstance(cfg, dict) else None
    if not isinstance(lm_cfg, dict):
        raise MusicgenError(f"{folder / 'state_dict.bin'}: its xp.cfg has no transformer_lm section")
    dim, scale = lm_cfg.get("dim"), lm_cfg.get("hidden_scale", 4)
    configs.check_decoder({  # the same checks as a Hugging Face config's, before anything is built
        "hidden_size": dim, "num_hidden_layers": lm_cfg.get("num_layers"), "num_attention_heads": lm_cfg.get("num_heads"),
        "ffn_dim": int(scale * dim) if isinstance(dim, int) and isinstance(scale, (int, float)) else None,
        "num_codebooks": lm_cfg.get("n_q"), "vocab_size": lm_cfg.get("card"), "audio_channels": cfg.get("channels", 1),
    }, name)
    if (cfg.get("fuser") or {}).get("prepend"):
        raise MusicgenError(
            f"'{name}' is an audiocraft-layout melody checkpoint, which musicgen does not read yet; "
            "use the Hugging Face layout of the same model (e.g. facebook/musicgen-melody)"
        )
    lm_state = audiocraft_to_lm_state(package["best_state"])
    lm_config = LMConfig(
        dim=lm_cfg["dim"],
        num_layers=lm_cfg["num_layers"],
        num_heads=lm_cfg["num_heads"],
        ffn_dim=int(lm_cfg.get("hidden_scale", 4) * lm_cfg["dim"]),
        num_codebooks=lm_cfg["n_q"],
        card=lm_cfg["card"],
        text_dim=lm_state["enc_to_dec_proj.weight"].shape[1],
        channels=cfg.get("channels", 1),
    )
    t5_name = ((((cfg.get("conditioners") or {}).get("description") or {}).get("t5") or {}).get("name")) or "t5-base"
    t5_repos = AUDIOCRAFT_T5_NAMES.get(t5_name, [t5_name])
    codec_file = folder / "compression_state_dict.bin"
    pointer = _torch_load(codec_file).get("pretrained") if codec_file.is_file() else None
    # A full audiocraft codec state uses audiocraft's own module names: the same published codec
    # is read from the hub cache in the transformers format instead.
    codec_repo = pointer if isinstance(pointer, str) else AUDIOCRAFT_CODEC
    t5_folder = _hub_folder(t5_repos, "the text encoder")
    codec_folder = _hub_folder([codec_repo], "the audio codec")
    return Checkpoint(
        name=name,
        folder=folder,
        lm_config=lm_config,
        lm_state=lm_state,
        text_encoder=t5_folder_encoder(t5_folder),
        tokenizer=_tokenizer(t5_folder),
        codec=read_codec(codec_folder),
        max_duration=float(cfg.get("dataset", {}).get("segment_duration", 30.0)),
    )
