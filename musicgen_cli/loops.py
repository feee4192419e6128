"""Bars and loops: durations in whole bars, files that loop without a seam, and the WAV loop chunk.

A loop is made by generating past its end (by `tail` seconds, one beat by default) and crossfading
that overhang into the opening: played in a loop, the last sample leads into the first as the
music itself continued, and the opening keeps its own start under the fade. The loop points go
into the sidecar and, for WAV, into a standard `smpl` chunk that samplers read.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np

from .errors import MusicgenError


def parse_meter(meter: str) -> tuple[int, int]:
    """'4/4' -> (4, 4); '6/8' -> (6, 8)."""
    match = re.fullmatch(r"\s*(\d{1,2})\s*/\s*(1|2|4|8|16|32)\s*", meter or "")
    if not match or int(match.group(1)) == 0:
        raise MusicgenError(f"--meter must look like 4/4, 3/4 or 6/8, got '{meter}'")
    return int(match.group(1)), int(match.group(2))


def bar_seconds(bpm: float, meter: str = "4/4") -> float:
    """Seconds of one bar: the meter's beats (its note value) at `bpm` quarter notes a minute."""
    if not (0 < bpm <= 1000):
        raise MusicgenError(f"--bpm must be above 0 and at most 1000, got {bpm:g}")
    beats, unit = parse_meter(meter)
    return beats * (4 / unit) * 60.0 / bpm


def bars_duration(bars: int, bpm: float, meter: str = "4/4") -> float:
    if bars < 1 or bars > 10000:
        raise MusicgenError(f"--bars must be a whole number of bars from 1, got {bars}")
    return bars * bar_seconds(bpm, meter)


def close_loop(wav: np.ndarray, length: int, fade: int) -> np.ndarray:
    """wav [C, length + fade]: the piece and its overhang -> [C, length] whose end leads into its
    start: the overhang is crossfaded (equal power, eased in and out) into the first `fade` samples."""
    if wav.shape[1] < length + fade:
        raise ValueError(f"a loop of {length} samples with a {fade}-sample fade needs {length + fade} samples")
    out = np.array(wav[:, :length], dtype=np.float32)
    if fade:
        t = (np.arange(fade, dtype=np.float32) + 0.5) / fade
        shape = 0.5 - 0.5 * np.cos(np.pi * t)  # slow at both ends: the first frames are the overhang alone
        fade_in, fade_out = np.sin(0.5 * np.pi * shape), np.cos(0.5 * np.pi * shape)
        out[:, :fade] = wav[:, :fade] * fade_in + wav[:, length : length + fade] * fade_out
    return out


def write_smpl(path: Path, sample_rate: int, start: int, end: int) -> None:
    """Append a `smpl` chunk with one forward loop over samples start .. end (inclusive) to a WAV
    file, and fix the RIFF size. The file is ours, still at its temporary name."""
    period = round(1e9 / sample_rate)  # nanoseconds a sample
    header = struct.pack("<9I", 0, 0, period, 60, 0, 0, 0, 1, 0)
    loop = struct.pack("<6I", 0, 0, start, end, 0, 0)  # cue id, type 0 = forward, start, end, fraction, play forever
    chunk = b"smpl" + struct.pack("<I", len(header) + len(loop)) + header + loop
    with open(path, "r+b") as f:
        if f.read(4) != b"RIFF":
            raise ValueError(f"{path} is not a RIFF WAV file")
        f.seek(0, 2)
        if f.tell() % 2:
            f.write(b"\0")  # chunks start on even offsets
        f.write(chunk)
        size = f.tell() - 8
        f.seek(4)
        f.write(struct.pack("<I", size))


def read_smpl_loops(path: Path) -> list[tuple[int, int]]:
    """The (start, end) sample loops of a WAV file's `smpl` chunk ([] when it has none)."""
    data = Path(path).read_bytes()
    at, loops = 12, []
    while at + 8 <= len(data):
        tag, size = data[at : at + 4], struct.unpack("<I", data[at + 4 : at + 8])[0]
        if tag == b"smpl":
            count = struct.unpack("<I", data[at + 36 : at + 40])[0]
            for i in range(count):
                _, _, start, end, _, _ = struct.unpack("<6I", data[at + 44 + 24 * i : at + 68 + 24 * i])
                loops.append((start, end))
        at += 8 + size + size % 2
    return loops


def length(duration: float | None, bars: int | None, bpm: float | None, meter: str, default: float) -> float:
    """Seconds of music to make: --bars at --bpm in --meter, else --duration, else `default`."""
    from .options import check_duration

    if bars is not None:
        if duration is not None:
            raise MusicgenError("give --duration or --bars, not both")
        if bpm is None:
            raise MusicgenError("--bars needs --bpm (the tempo the bars are counted in)")
        return check_duration(bars_duration(bars, bpm, meter))
    if bpm is not None:
        bar_seconds(bpm, meter)  # checked even when unused
    return check_duration(default if duration is None else duration)


def tail(bpm: float | None) -> float:
    """The overhang generated past a loop's end and crossfaded into its opening: one beat (at
    most 2 s), or half a second without a tempo."""
    return min(2.0, 60.0 / bpm) if bpm else 0.5


def record(bpm: float | None, bars: int | None, meter: str, loop: bool) -> dict:
    """What the sidecar says about bars and loops (nothing when neither was asked for)."""
    return {k: v for k, v in {"bpm": bpm, "bars": bars, "meter": meter if (bpm or bars) else None,
                              "loop": loop or None}.items() if v is not None}


def to_make(frame_rate: float, seconds: float, bpm: float | None, bars: int | None, loop: bool) -> float:
    """Seconds to generate for `seconds` of music: whole bars and loops get a frame more (and a
    loop its overhang), which fit_length then cuts to the exact length."""
    return seconds + (tail(bpm) if loop else 0.0) + (1 / frame_rate if bars or loop else 0.0)


def fit_length(wav: np.ndarray, seconds: float, sample_rate: int, loop: bool) -> list[np.ndarray]:
    """Generated audio [B, C, N] cut to exactly `seconds` (whole bars), each piece's overhang
    crossfaded into its opening when it is to loop."""
    length = round(seconds * sample_rate)
    if loop:
        return [close_loop(w, length, w.shape[-1] - length) for w in wav]
    return list(wav[..., :length])
