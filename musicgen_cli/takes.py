"""Takes: a file's sidecar holds everything that made it, so a good take can be made again
(`generate --again take.wav`, sample for sample on the same machine, device, backend and dtype)
or carried on (`continue take.wav` uses the take's prompt, model and settings). Options given on
the command line win over the take's.
"""

from __future__ import annotations

import json
from pathlib import Path

from .errors import MusicgenError
from .files import one_line, sidecar_path

# What a take's sidecar gives a new run, by the option's parameter name: `generate --again`
# everything; `continue` the voice of the take (a new seed and length, and no normalisation, so that
# the take's own samples come back unchanged).
SETTINGS = ("model", "duration", "top_k", "top_p", "temperature", "cfg", "seed", "stride", "normalize", "device",
            "backend", "dtype", "bpm", "bars", "meter", "loop")
CONTINUE = ("model", "top_k", "top_p", "temperature", "cfg", "stride", "device", "backend", "dtype", "bpm", "meter")


def read(path: Path) -> dict:
    """The sidecar of `path` (an audio file, or the sidecar itself), checked to be one of ours."""
    path = Path(path).expanduser()
    side = path if path.suffix.lower() == ".json" else sidecar_path(path)
    if not side.is_file():
        raise MusicgenError(f"{path} has no sidecar ({side.name}) to take its settings from")
    try:
        take = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise MusicgenError(f"{side} is not a musicgen sidecar ({one_line(e)})") from e
    if not isinstance(take, dict) or not {"model", "seed", "musicgen_version"} <= take.keys():
        raise MusicgenError(f"{side} is not a musicgen sidecar (no model, seed or version in it)")
    return take


def find(path: Path) -> dict | None:
    """The sidecar of an input file when it is one of our takes, else None."""
    try:
        return read(path)
    except MusicgenError:
        return None


def settings(take: dict, given: dict, explicit: set[str], names=SETTINGS) -> dict:
    """`given` (a command's parameters) with the take's settings `names` wherever the command line
    said nothing. A duration given anew replaces the take's bars; the take's bars its duration."""
    out = dict(given)
    for name in names:
        if name in given and name not in explicit and name in take:
            out[name] = take[name]
    if "bars" not in names:
        return out
    if "duration" in explicit and "bars" not in explicit:
        out["bars"] = None
    elif out.get("bars") is not None:
        out["duration"] = None
    return out


def again_output(path: Path) -> Path:
    """Where a take made again goes by default: next to it, never over it."""
    path = Path(path)
    audio = path if path.suffix.lower() != ".json" else path.with_suffix(".wav")
    return audio.with_name(f"{audio.stem}-again{audio.suffix}")
