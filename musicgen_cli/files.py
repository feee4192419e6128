"""Output files: their names and checks (before anything slow runs), and atomic writes.

Standard library only: the command line checks its output paths before importing anything heavy.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from pathlib import Path

from .errors import MusicgenError

# extension -> (libsndfile format, subtype); libsndfile >= 1.1 encodes all four without ffmpeg
OUTPUT_FORMATS = {
    ".wav": ("WAV", "PCM_16"),
    ".flac": ("FLAC", "PCM_16"),
    ".ogg": ("OGG", "VORBIS"),
    ".mp3": ("MP3", "MPEG_LAYER_III"),
}


def one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def check_output_path(path, force: bool) -> Path:
    """Validate an output path before generation starts; return it resolved."""
    path = Path(path).expanduser().resolve()
    if path.is_dir():
        raise MusicgenError(f"{path} is a folder; give a file name such as {path / 'song.wav'}")
    if path.suffix.lower() not in OUTPUT_FORMATS:
        raise MusicgenError(f"unsupported output format {path.suffix or '(no extension)'!r} for {path.name}; "
                            f"use one of {', '.join(OUTPUT_FORMATS)}")
    folder = path.parent
    if not folder.exists():
        raise MusicgenError(f"output folder {folder} does not exist")
    if not folder.is_dir():
        raise MusicgenError(f"{folder} is not a folder, so {path.name} cannot be written in it")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise MusicgenError(f"output folder {folder} is not writable")
    try:  # os.access can be wrong (root, ACLs, read-only mounts): really try
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".musicgen-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise MusicgenError(f"output folder {folder} is not writable ({e.strerror or e})") from e
    if path.exists() and not force:
        raise MusicgenError(f"{path} exists; pass --force to overwrite")
    return path


def _default_mode(path: Path) -> int:
    if path.exists():
        return path.stat().st_mode & 0o7777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_target(path):
    """Yield a hidden temp path next to `path`; on success move it onto `path`, else delete it."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    except OSError as e:
        raise MusicgenError(f"cannot write in {path.parent} ({e.strerror or e})") from e
    os.close(fd)
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)  # the data is on disk before the rename makes it visible
        finally:
            os.close(fd)
        os.chmod(tmp, _default_mode(path))  # mkstemp creates files as 0600
        os.replace(tmp, path)
    except BaseException as e:  # KeyboardInterrupt included: never leave the temp file behind
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError) or type(e).__name__ == "LibsndfileError":
            raise MusicgenError(f"could not write {path}: {one_line(e)}") from e
        raise


def write_json(path, obj) -> None:
    """Write `obj` as indented JSON to `path`, atomically."""
    with atomic_target(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, ensure_ascii=False)
            f.write("\n")


def sidecar_path(audio_path) -> Path:
    """The metadata file that goes with an audio file: song.wav -> song.json."""
    return Path(audio_path).with_suffix(".json")


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60].strip("-") or "musicgen"


def output_paths(prompts: list[str], output: Path | None) -> list[Path]:
    """-o song.wav names the file (song-1.wav, song-2.wav, ... for several prompts);
    without -o each file is named after its prompt, in the current folder."""
    if output is not None:
        if len(prompts) == 1:
            return [output]
        return [output.with_name(f"{output.stem}-{i}{output.suffix}") for i in range(1, len(prompts) + 1)]
    names: list[Path] = []
    for p in prompts:
        base, n = slug(p), 1
        name = Path(f"{base}.wav")
        while name in names:
            n += 1
            name = Path(f"{base}-{n}.wav")
        names.append(name)
    return names


def check_outputs(paths: list[Path], force: bool) -> list[Path]:
    checked = [check_output_path(p, force) for p in paths]
    for p in checked:
        side = sidecar_path(p)
        if side.exists() and not force:
            raise MusicgenError(f"{side} (the sidecar of {p.name}) exists; pass --force to overwrite")
    if len(set(checked)) != len(checked):
        raise MusicgenError("two outputs would get the same file name; use distinct -o names")
    return checked
