"""`musicgen batch`'s input, read and checked before any work: a .txt file (one prompt a line) or a
.jsonl file (one object a line), each item named and seeded so that the same file always gives the
same audio, wherever and in whatever order it is made. Standard library only."""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import MusicgenError
from .files import OUTPUT_FORMATS, slug
from .options import MAX_DURATION, MAX_PROMPT_CHARS, MAX_SEED

# What a .jsonl line may say (the command line's options are the defaults for lines that don't).
KEYS = {"prompt": str, "name": str, "duration": (int, float), "seed": int, "melody": str, "format": str,
        "model": str, "top_k": int, "top_p": (int, float), "temperature": (int, float), "cfg": (int, float)}
SAMPLING = ("top_k", "top_p", "temperature", "cfg")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")  # a file name on every system, no dots
RESERVED = {"metadata", "failures"}  # the job's own files in the output folder
MAX_BAD_LINES = 20  # reported one a line; past this, only counted


@dataclass(frozen=True)
class Item:
    line: int
    name: str
    prompt: str
    seed: int
    duration: float
    format: str  # the output's extension, without the dot
    model: str | None
    sampling: tuple  # (top_k, top_p, temperature, cfg)
    melody: str | None = field(default=None)

    @property
    def file_name(self) -> str:
        return f"{self.name}.{self.format}"

    @property
    def key(self) -> tuple:
        """Items with the same key can share a batch: same model, length, sampling and melody."""
        return (self.model, self.duration, self.sampling, self.melody)


def derived_seed(seed: int, name: str) -> int:
    """An item's seed from the job's --seed and the item's name: stable across runs and machines."""
    digest = hashlib.sha256(f"musicgen-batch/{seed}/{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & MAX_SEED


def _lines(path: Path) -> list[tuple[int, str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except IsADirectoryError:
        raise MusicgenError(f"{path} is a folder; give a .txt or .jsonl file of prompts")
    except FileNotFoundError:
        raise MusicgenError(f"prompts file {path} does not exist")
    except (OSError, UnicodeDecodeError) as e:
        raise MusicgenError(f"cannot read prompts file {path}: {getattr(e, 'strerror', None) or e}")
    return [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1)]


def _fields(path: Path, line: str) -> dict:
    """One line's fields (raises ValueError with the reason when the line is bad)."""
    if path.suffix.lower() == ".txt":
        return {"prompt": line}
    try:
        obj = json.loads(line)
    except ValueError as e:
        raise ValueError(f"not JSON ({e.msg})") from None
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    unknown = sorted(set(obj) - set(KEYS))
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r} (known: {', '.join(KEYS)})")
    if "prompt" not in obj:
        raise ValueError("no \"prompt\"")
    for key, value in obj.items():
        if not isinstance(value, KEYS[key]) or isinstance(value, bool):
            kind = {str: "a string", int: "a whole number"}.get(KEYS[key], "a number")
            raise ValueError(f"\"{key}\" must be {kind}")
    return obj


def _item(number: int, fields: dict, defaults: dict) -> dict:
    """The item's settings, each checked (ValueError on the first bad one)."""
    item = {**defaults, **fields}
    prompt = item["prompt"].strip()
    if not prompt:
        raise ValueError("the prompt is empty")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise ValueError(f"the prompt is {len(prompt)} characters; at most {MAX_PROMPT_CHARS}")
    duration = float(item["duration"])
    if not (math.isfinite(duration) and 0 < duration <= MAX_DURATION):
        raise ValueError(f"duration must be more than 0 and at most {MAX_DURATION:g} seconds")
    if "seed" in fields and not 0 <= fields["seed"] <= MAX_SEED:
        raise ValueError(f"seed must be between 0 and {MAX_SEED}")
    fmt = item["format"].lower().lstrip(".")
    if f".{fmt}" not in OUTPUT_FORMATS:
        raise ValueError(f"format must be one of {', '.join(f[1:] for f in OUTPUT_FORMATS)}")
    if "name" in fields and not NAME.match(fields["name"]):
        raise ValueError("a name is 1-100 letters, digits, '-' or '_' (it names the file)")
    if item["top_k"] < 0 or not 0 <= item["top_p"] <= 1 or item["temperature"] < 0 or item["cfg"] < 0:
        raise ValueError("top_k, temperature and cfg must be 0 or more, top_p from 0 to 1")
    return {**item, "prompt": prompt, "duration": duration, "format": fmt, "line": number}


def read_items(path: Path, defaults: dict, report) -> list[Item]:
    """Every item of the prompts file at `path`; `defaults` holds the command line's duration,
    format, model, sampling options and seed. Bad lines are each reported (`report(line)`) with
    their number, and then nothing is made: a MusicgenError says how many."""
    path = Path(path)
    if path.suffix.lower() not in (".txt", ".jsonl"):
        raise MusicgenError(f"{path} is neither .txt (one prompt a line) nor .jsonl (one object a line)")
    good, bad = [], 0
    for number, line in _lines(path):
        if not line or line.startswith("#") and path.suffix.lower() == ".txt":
            continue
        try:
            good.append(_item(number, _fields(path, line), defaults))
        except ValueError as e:
            bad += 1
            if bad <= MAX_BAD_LINES:
                report(f"{path}:{number}: {e}")
    taken: dict[str, int] = {name: 0 for name in RESERVED}  # lower-cased name -> its line (0: the job's)
    for item in good:  # named lines keep their names; the others are named after their prompt
        if "name" in item:
            first = taken.setdefault(item["name"].lower(), item["line"])
            if first != item["line"]:
                bad += 1
                report(f"{path}:{item['line']}: the name {item['name']!r} is taken "
                       f"({f'by line {first}' if first else 'by the job: metadata, failures'}; names ignore case)")
    for item in good:
        if "name" not in item:
            base, n = slug(item["prompt"]), 1
            while (candidate := base if n == 1 else f"{base}-{n}").lower() in taken:
                n += 1
            item["name"] = candidate
            taken[candidate] = item["line"]
    if bad:
        raise MusicgenError(f"{bad} bad line{'s' * (bad > 1)} in {path}; nothing was made")
    if not good:
        raise MusicgenError(f"{path} has no prompts")
    return [Item(line=i["line"], name=i["name"], prompt=i["prompt"],
                 seed=i["seed"] if "seed" in i else derived_seed(defaults["job_seed"], i["name"]),
                 duration=i["duration"], format=i["format"], model=i["model"],
                 sampling=tuple(i[k] for k in SAMPLING), melody=i.get("melody")) for i in good]
