"""Output files: their names and checks (before anything slow runs), and atomic writes.

Standard library only: the command line checks its output paths before importing anything heavy.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

try:
    import resource
except ImportError:  # Windows
    resource = None

from .errors import MusicgenError

# extension -> (libsndfile format, subtype); libsndfile >= 1.1 encodes all four without ffmpeg
OUTPUT_FORMATS = {
    ".wav": ("WAV", "PCM_16"),
    ".flac": ("FLAC", "PCM_16"),
    ".ogg": ("OGG", "VORBIS"),
    ".mp3": ("MP3", "MPEG_LAYER_III"),
}
TEMP_PREFIX = ".musicgen-tmp-"  # our temp files; sweep_stale removes old ones
LEGACY_TEMP = re.compile(r"^\.[^/]+\.[a-z0-9_]{8}\.(wav|flac|ogg|mp3)$")  # what earlier versions named them
STALE_SECONDS = 3600.0


def one_line(error: BaseException, limit: int | None = None) -> str:
    """An error's message on one line, cut to `limit` characters if given."""
    return " ".join(str(error).split())[:limit]


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
        fd, probe = tempfile.mkstemp(dir=folder, prefix=f"{TEMP_PREFIX}probe-")
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


def numbered(path: Path, n: int) -> Path:
    """song.wav -> song-2.wav (n = 1: the name itself)."""
    return path if n == 1 else path.with_name(f"{path.stem}-{n}{path.suffix}")


def _reserve(tmp: str, final: Path) -> bool:
    """Claim `final` for the finished temp file, never replacing a file that exists: a hard link
    fails with FileExistsError if `final` appeared meanwhile (a race with another run included).
    Where the file system has no hard links, an empty placeholder is created exclusively instead
    (True: move the temp file over it once every name of the set is claimed)."""
    try:
        os.link(tmp, final)
        return False
    except FileExistsError:
        raise
    except OSError:
        os.close(os.open(final, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        return True


def _commit(pairs: list[tuple[str, Path]], force: bool) -> list[Path]:
    """Move every temp file onto its name, or none. Without `force`, if any name is taken by then,
    the whole set goes to the first free numbered names (song-2.wav with song-2.json)."""
    if force:
        for tmp, final in pairs:
            os.replace(tmp, final)
        return [final for _, final in pairs]
    for n in range(1, 1000):
        claimed: list[tuple[str, Path, bool]] = []
        try:
            for tmp, final in pairs:
                claimed.append((tmp, numbered(final, n), _reserve(tmp, numbered(final, n))))
            for tmp, final, placeholder in claimed:
                if placeholder:
                    os.replace(tmp, final)
            return [final for _, final, _ in claimed]
        except BaseException as e:
            for _, done, _ in claimed:  # ours (links to our temp files, or placeholders): both or neither
                with contextlib.suppress(OSError):
                    os.unlink(done)
            if not isinstance(e, FileExistsError):
                raise
    raise MusicgenError(f"no free name next to {pairs[0][1]} (tried 999 numbered names)")


def write_failure(path: Path, error: BaseException, written: int = 0) -> str:
    """'could not write PATH: WHY', with the reason in words when the system knows it."""
    code = getattr(error, "errno", None)
    why = one_line(error)
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        free = None
    fsize = resource.getrlimit(resource.RLIMIT_FSIZE)[0] if resource else -1
    if code in (errno.ENOSPC, errno.EDQUOT) or (free is not None and free < (1 << 20)):
        why = f"the disk holding {path.parent} is full" + (f" ({error.strerror})" if getattr(error, "strerror", None) else "")
    elif code == errno.EFBIG or (fsize not in (-1, getattr(resource, "RLIM_INFINITY", -1)) and written >= fsize):
        why = f"the file would be larger than this system allows ({fsize} bytes)"
    elif isinstance(error, OSError) and error.strerror:
        why = error.strerror
    return f"could not write {path}: {why}"


def write_files(targets: list, force: bool = True) -> list[Path]:
    """Write each (path, writer) of `targets` as writer(temp_path) to a hidden temp file beside it,
    then move them all into place, or none (an audio file never lacks its sidecar). Without `force`
    an existing file is never replaced; the set then takes numbered names, which are returned.
    Temp files are removed on any failure, Ctrl-C and SIGTERM included; after SIGKILL or a power
    cut, `sweep_stale` removes them later."""
    temps: list[str] = []
    path = None
    try:
        for path, writer in targets:
            path = Path(path)
            try:
                fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{TEMP_PREFIX}{path.stem}.", suffix=path.suffix)
            except OSError as e:
                raise MusicgenError(f"cannot write in {path.parent} ({e.strerror or e})") from e
            os.close(fd)
            temps.append(tmp)
            writer(tmp)
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)  # the data is on disk before a name makes it visible
            finally:
                os.close(fd)
            os.chmod(tmp, _default_mode(path))  # mkstemp creates files as 0600
        path = None
        return _commit([(t, Path(p)) for t, (p, _) in zip(temps, targets)], force)
    except BaseException as e:  # KeyboardInterrupt included: never leave a temp file behind
        if isinstance(e, OSError) or type(e).__name__ == "LibsndfileError":
            where = Path(path) if path is not None else Path(targets[0][0])
            size = os.path.getsize(temps[-1]) if temps and os.path.exists(temps[-1]) else 0
            raise MusicgenError(write_failure(where, e, size)) from e
        raise
    finally:
        for tmp in temps:  # after a link the temp name is a second name of the file; after a move, gone
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def sweep_stale(folder: Path, max_age: float = STALE_SECONDS) -> list[Path]:
    """Remove our own temp files in `folder` (by name pattern) untouched for `max_age` seconds:
    what a run killed with SIGKILL or a power cut left behind. Returns what was removed."""
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            if not (entry.name.startswith(TEMP_PREFIX) or LEGACY_TEMP.match(entry.name)):
                continue
            with contextlib.suppress(OSError):
                if entry.is_file(follow_symlinks=False) and time.time() - entry.stat(follow_symlinks=False).st_mtime > max_age:
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
    return removed


def _dump_json(path, obj) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")


def write_json(path, obj) -> None:
    """Write `obj` as indented JSON to `path`, atomically."""
    write_files([(path, json_writer(obj))])


def json_writer(obj):
    """A writer for write_files: `obj` as indented JSON."""
    return lambda tmp: _dump_json(tmp, obj)


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
    for folder in {p.parent for p in checked}:
        sweep_stale(folder)
    for p in checked:
        side = sidecar_path(p)
        if side.exists() and not force:
            raise MusicgenError(f"{side} (the sidecar of {p.name}) exists; pass --force to overwrite")
    if len(set(checked)) != len(checked):
        raise MusicgenError("two outputs would get the same file name; use distinct -o names")
    return checked
