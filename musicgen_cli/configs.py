"""What a checkpoint's config may ask for, checked before any weight is read or anything is built:
types, ranges, and the memory its weights would take (so that a config describing a 60 GB codec is
one line, not an allocation). Standard library only."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

from .errors import MusicgenError

DECODER_KEYS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "ffn_dim", "num_codebooks", "vocab_size")
# sizes a text encoder (T5) and an audio codec (EnCodec) config may give: far above every published
# model (t5-xxl: d_model 4096, d_ff 10240, 24 layers; EnCodec 32 kHz: 64 filters, 4 strides)
TEXT_ENCODER_LIMITS = {"vocab_size": 1 << 20, "d_model": 1 << 16, "d_kv": 1 << 12, "d_ff": 1 << 18,
                       "num_layers": 256, "num_heads": 256}
CODEC_LIMITS = {"sampling_rate": 384000, "audio_channels": 2, "num_filters": 1 << 12, "hidden_size": 1 << 14,
                "codebook_size": 1 << 16, "codebook_dim": 1 << 14, "kernel_size": 64, "last_kernel_size": 64,
                "residual_kernel_size": 64, "num_residual_layers": 16, "dilation_growth_rate": 16,
                "compress": 16, "num_lstm_layers": 16}
STRIDES = ("upsampling_ratios", 8, 64)  # at most 8 strides of at most 64 each
MAX_GIB = {"decoder": 64, "text encoder": 32, "audio codec": 4}  # float32 weights each part may have


def read_config(folder: Path) -> dict:
    try:
        config = json.loads((folder / "config.json").read_text())
    except (ValueError, OSError) as e:
        raise MusicgenError(f"{folder / 'config.json'} is not valid JSON") from e
    if not isinstance(config, dict):
        raise MusicgenError(f"{folder / 'config.json'} holds a {type(config).__name__}, not an object")
    return config


def _whole(value, limit: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= limit


def check_sizes(part: dict, limits: dict, where: str) -> None:
    """Each of `limits`' keys that `part` gives is a whole number from 1 to its limit."""
    for key, limit in limits.items():
        if key in part and not _whole(part[key], limit):
            raise MusicgenError(f"{where}.{key} must be a whole number from 1 to {limit}, got {part[key]!r:.40}")


def check_list(part: dict, key: str, most: int, limit: int, where: str) -> None:
    """`part[key]`, if given, is a list of 1 to `most` whole numbers from 1 to `limit`."""
    values = part.get(key, [1])
    if not (isinstance(values, list) and 0 < len(values) <= most and all(_whole(v, limit) for v in values)):
        raise MusicgenError(f"{where}.{key} must be a list of 1 to {most} whole numbers from 1 to {limit}, "
                            f"got {values!r:.40}")


def check_weights(size: int, what: str, where: str) -> None:
    """`size` bytes of float32 weights for `what` (a key of MAX_GIB), as `where` describes it:
    refused above its limit."""
    if size > MAX_GIB[what] << 30:
        raise MusicgenError(f"{where} describes {'an' if what[0] in 'aeiou' else 'a'} {what} of "
                            f"{size / 2**30:.0f} GiB (at most {MAX_GIB[what]}); refusing to build it")


def weights_bytes(module) -> int:
    """The float32 bytes of a torch module's parameters and buffers (built on the meta device, it
    holds none yet)."""
    return 4 * sum(t.numel() for t in itertools.chain(module.parameters(), module.buffers()))


def check_hf(config: dict, name: str) -> None:
    """A Hugging Face MusicGen config.json: its three parts are objects of sizes in range (the text
    encoder's and codec's weights are counted once built on the meta device: checkpoints._meta)."""
    for part in ("decoder", "text_encoder", "audio_encoder"):
        if not isinstance(config.get(part), dict):
            raise MusicgenError(f"'{name}': config.json has no {part} object")
    check_decoder(config["decoder"], name)
    check_sizes(config["text_encoder"], TEXT_ENCODER_LIMITS, f"'{name}': config.json's text_encoder")
    if config["audio_encoder"].get("model_type") == "musicgen_codec_v2":
        return  # the bundled model's own codec: codec_v2.checked_config, when it is built
    check_sizes(config["audio_encoder"], CODEC_LIMITS, f"'{name}': config.json's audio_encoder")
    check_list(config["audio_encoder"], *STRIDES, f"'{name}': config.json's audio_encoder")


def check_decoder(dec: dict, name: str) -> None:
    """The LM's sizes (a Hugging Face config's `decoder`; audiocraft's are renamed to these), and
    its weights within MAX_GIB."""
    for key in DECODER_KEYS:
        if not _whole(dec.get(key), 1 << 20):
            raise MusicgenError(f"'{name}': config.json's decoder.{key} must be a positive whole number, got {dec.get(key)!r}")
    if dec["hidden_size"] % dec["num_attention_heads"]:
        raise MusicgenError(f"'{name}': decoder.hidden_size {dec['hidden_size']} is not divisible by "
                            f"num_attention_heads {dec['num_attention_heads']}")
    if dec.get("audio_channels", 1) not in (1, 2):
        raise MusicgenError(f"'{name}': decoder.audio_channels must be 1 or 2, got {dec.get('audio_channels')!r}")
    check_weights(4 * dec["num_hidden_layers"] * (4 * dec["hidden_size"] ** 2 + 2 * dec["hidden_size"] * dec["ffn_dim"]),
                  "decoder", f"'{name}': config.json")


def window_seconds(folder: Path, frame_rate: float) -> float:
    """The LM's window: generation_config.json's max_length in codec frames (1500 = 30 s for the
    published models; our bundled model's is shorter), 30 s when the file does not say."""
    try:
        max_length = json.loads((folder / "generation_config.json").read_text()).get("max_length")
    except (ValueError, OSError, AttributeError):
        max_length = None
    if max_length is not None and not (isinstance(max_length, int) and max_length > 0):
        raise MusicgenError(f"{folder / 'generation_config.json'}: max_length must be a positive number of frames, "
                            f"got {max_length!r}")
    return max_length / frame_rate if max_length else 30.0
