"""The models musicgen knows by name: the published MusicGen checkpoints and our bundled one.

Cheap to import (standard library only): the command line checks names before anything heavy loads.
"""

from __future__ import annotations

import difflib
import json
import math
from dataclasses import dataclass
from pathlib import Path

BUNDLED = "bundled"
BUNDLED_FOLDER = Path(__file__).parent / "models" / BUNDLED


@dataclass(frozen=True)
class Known:
    name: str  # the short name: small, melody, stereo-large, ...
    repo: str  # the Hugging Face hub id
    decoder: str  # decoder width x layers (reference.md's table)
    stereo: bool
    melody: bool
    window: float = 30.0  # seconds the model was trained on


_DECODERS = {"small": "1024 x 24", "medium": "1536 x 48", "large": "2048 x 48",
             "melody": "1536 x 48", "melody-large": "2048 x 48"}
KNOWN = {k.name: k for k in [
    *(Known(size, f"facebook/musicgen-{size}", dec, stereo=False, melody=size.startswith("melody"))
      for size, dec in _DECODERS.items()),
    *(Known(f"stereo-{size}", f"facebook/musicgen-stereo-{size}", dec, stereo=True, melody=size.startswith("melody"))
      for size, dec in _DECODERS.items()),
]}

# What runs when --model is not given: the published model when it is cached or can be downloaded,
# else (offline, not cached) the bundled one, with one line saying so.
DEFAULT_MODEL = "small"
DEFAULT_MELODY_MODEL = "melody"


def bundled() -> Known:
    """The bundled model's entry, read from its config files."""
    config = json.loads((BUNDLED_FOLDER / "config.json").read_text())
    frames = json.loads((BUNDLED_FOLDER / "generation_config.json").read_text())["max_length"]
    dec, codec = config["decoder"], config["audio_encoder"]
    hop = codec.get("hop_length") or math.prod(codec["upsampling_ratios"])  # our codec v2 / EnCodec
    return Known(BUNDLED, "", f"{dec['hidden_size']} x {dec['num_hidden_layers']}",
                 stereo=dec.get("audio_channels", 1) == 2, melody=config["model_type"] == "musicgen_melody",
                 window=frames * hop / codec["sampling_rate"])


def hub_id(name: str) -> str | None:
    """The hub id a short name or a hub id stands for; None for anything else (a folder, bundled)."""
    if name in KNOWN:
        return KNOWN[name].repo
    parts = name.split("/")
    if len(parts) == 2 and all(parts) and not name.startswith((".", "/", "~")) and not Path(name).exists():
        return name
    return None


def suggestion(name: str) -> str:
    """' (did you mean X?)' for a near miss of a known name or hub id, else ''."""
    candidates = [*KNOWN, BUNDLED, *(k.repo for k in KNOWN.values())]
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.75)
    return f" (did you mean {close[0]}?)" if close else ""
