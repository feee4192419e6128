"""Melodies written, not hummed: the melody chroma from a MIDI file or a chord chart.

The melody models follow a one-hot chroma (12 pitch classes, FRAME_RATE frames a second; frame i
at i / FRAME_RATE s, as in the audio chroma). From a score it is exact, with no audio analysis:
- MIDI: the melody line is the highest note sounding at each frame's time, over the track the user
  names, else a track named like a melody (melody, lead, vocal, voice, tune, solo), else all
  tracks; drums (channel 10) never count. The tempo map gives the timing. In a rest, the last
  pitch class heard holds (before the first note: the first note's), as a held tune would.
- A chord chart ("Am F C G", `bpm`, `beats_per_chord`): each chord's root fills its span. Roots
  rather than whole chords because the model was trained on the one strongest pitch class a frame.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .errors import MusicgenError
from .files import one_line

FRAME_RATE = 32000 / 4096  # chroma frames a second (chroma.SAMPLE_RATE / chroma.HOP), 7.8125
NOTE_NAMES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
QUALITIES = ("", "m", "min", "maj", "M", "7", "maj7", "M7", "m7", "min7", "mmaj7", "m(maj7)", "dim", "dim7",
             "o", "o7", "m7b5", "ø", "ø7", "aug", "+", "+7", "aug7", "sus2", "sus4", "sus", "7sus4", "6", "m6",
             "9", "m9", "maj9", "add9", "madd9", "11", "m11", "13", "5", "7b9", "7#9", "7b5", "7#5")
CHORD = re.compile(r"([A-G])([#b♯♭]?)(.*?)(?:/([A-G])([#b♯♭]?))?")
MELODY_TRACK_WORDS = ("melody", "lead", "vocal", "voice", "tune", "solo")


def _pitch_class(letter: str, accidental: str) -> int:
    return (NOTE_NAMES[letter] + {"#": 1, "♯": 1, "b": -1, "♭": -1}.get(accidental, 0)) % 12


def chord_root(name: str) -> int:
    """'Am7' -> 9, 'F#sus4' -> 6, 'C/G' -> 0 (a slash chord's root, not its bass)."""
    match = CHORD.fullmatch(name.strip())
    if not match or match.group(3) not in QUALITIES:
        raise MusicgenError(f"unknown chord '{name}': write a root (C, F#, Bb) with an optional quality "
                            "(m, 7, maj7, m7, dim, aug, sus2, sus4, 6, 9, add9, ...) and bass (/G)")
    return _pitch_class(match.group(1), match.group(2))


def frames_to_chroma(classes: np.ndarray) -> np.ndarray:
    """Pitch class per frame [F] -> one-hot chroma [F, 12] float32."""
    return np.eye(12, dtype=np.float32)[classes]


def chords_chroma(chart: str, bpm: float, beats_per_chord: float = 4.0) -> tuple[np.ndarray, float]:
    """A chord chart ("Am F C G", separated by spaces, commas or bars) -> (one-hot chroma [F, 12],
    seconds) for one pass through the chart."""
    if not (bpm > 0 and beats_per_chord > 0) or bpm > 1000:
        raise MusicgenError("--bpm and --beats-per-chord must be positive (bpm at most 1000)")
    names = [c for c in re.split(r"[\s,|]+", chart) if c]
    if not names:
        raise MusicgenError("--chords is empty; write chords such as \"Am F C G\"")
    roots = [chord_root(c) for c in names]
    seconds_each = 60.0 / bpm * beats_per_chord
    frames = max(1, round(len(roots) * seconds_each * FRAME_RATE))
    centres = np.arange(frames) / FRAME_RATE
    index = np.minimum((centres / seconds_each).astype(int), len(roots) - 1)
    return frames_to_chroma(np.asarray(roots)[index]), len(roots) * seconds_each


def midi_notes(path: Path, track: str | None = None) -> list[tuple[float, float, int]]:
    """(start s, end s, MIDI pitch) of the melody notes of a Standard MIDI file (see the module doc)."""
    import mido

    try:
        midi = mido.MidiFile(str(path))
    except (OSError, ValueError, EOFError, KeyError, IndexError) as e:
        raise MusicgenError(f"could not read {path} as a MIDI file ({one_line(e)})") from e
    names = [t.name.strip() for t in midi.tracks]
    if track is not None:
        chosen = [i for i, n in enumerate(names) if n.lower() == track.lower() or str(i) == track]
        if not chosen:
            raise MusicgenError(f"{path} has no track '{track}' (its tracks: {', '.join(repr(n) for n in names)})")
    else:
        chosen = [i for i, n in enumerate(names) if any(w in n.lower() for w in MELODY_TRACK_WORDS)]
    seconds = _tempo_map(midi)
    notes = []
    for i in sorted(set(chosen or range(len(names)))):
        sounding, tick = {}, 0
        for msg in midi.tracks[i]:
            tick += msg.time
            if msg.type not in ("note_on", "note_off") or msg.channel == 9:
                continue
            key = (msg.channel, msg.note)
            if msg.type == "note_on" and msg.velocity > 0:
                sounding.setdefault(key, tick)
            elif key in sounding:
                notes.append((seconds(sounding.pop(key)), seconds(tick), msg.note))
        notes += [(seconds(start), seconds(tick), note) for (_, note), start in sounding.items()]
    if not notes:
        raise MusicgenError(f"{path} has no notes to follow" + (f" in track '{track}'" if track else ""))
    return sorted(notes)


def _tempo_map(midi):
    """tick -> seconds under the file's tempo changes (from any track; 120 bpm until the first)."""
    import mido

    changes, tick = [], 0
    for t in midi.tracks:
        tick = 0
        for msg in t:
            tick += msg.time
            if msg.type == "set_tempo":
                changes.append((tick, msg.tempo))
    changes.sort()
    starts = [(0, 0.0, 500000)]  # (tick, seconds at that tick, tempo from there)
    for at, tempo in changes:
        t0, s0, old = starts[-1]
        starts.append((at, s0 + mido.tick2second(at - t0, midi.ticks_per_beat, old), tempo))

    def seconds(tick: int) -> float:
        t0, s0, tempo = next(s for s in reversed(starts) if s[0] <= tick)
        return s0 + mido.tick2second(tick - t0, midi.ticks_per_beat, tempo)

    return seconds


def notes_chroma(notes: list[tuple[float, float, int]]) -> np.ndarray:
    """Melody notes -> one-hot chroma [F, 12]: the highest note sounding at each frame's time;
    rests hold the last pitch class heard."""
    end = max(e for _, e, _ in notes)
    frames = max(1, round(end * FRAME_RATE))
    centres = np.arange(frames) / FRAME_RATE
    top = np.full(frames, -1)
    for start, stop, pitch in notes:
        on = (centres >= start) & (centres < stop)
        top[on] = np.maximum(top[on], pitch)
    first = top[top >= 0][0] if (top >= 0).any() else min(notes, key=lambda n: n[0])[2]
    for i in range(frames):  # hold through rests
        top[i] = top[i] if top[i] >= 0 else (top[i - 1] if i else first)
    return frames_to_chroma(top % 12)


def midi_chroma(path: Path, track: str | None = None) -> tuple[np.ndarray, float]:
    """A MIDI file's melody -> (one-hot chroma [F, 12], seconds to the end of its last note)."""
    notes = midi_notes(path, track)
    return notes_chroma(notes), max(end for _, end, _ in notes)
