"""A seeded procedural composer: styles, forms, chords, motif melodies, bass lines and drums.

``compose(seed, seconds, style)`` returns a :class:`Piece`: notes in seconds on General MIDI channels
(channel 9 = drums, its pitches are GM percussion keys) with a program per other channel, so that a
renderer needs nothing else. Everything comes from ``numpy.random.default_rng(seed)``.

Long-range structure: the piece is a form of sections (whole bars, 4 or 8 each). Each section type
(verse, chorus, A, drop, ...) is written once - its chords, bass, comping, drums and a melody built
from a 1-2 bar motif - and placed at every occurrence; a returning section may vary a few melody
notes. Only the per-note humanisation (<= 8 ms, a few velocity steps) differs between occurrences.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .styles import DRUM_PATTERNS, FILLS, FORMS, NO_DRUMS, NO_MELODY, QUIET_SECTIONS, STYLES, Style

DRUM_CHANNEL = 9
MELODY_CH, CHORDS_CH, BASS_CH = 0, 1, 2
BEATS_PER_BAR = 4
JITTER_S = 0.008

SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
KEY_NAMES = {
    "major": ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"),
    "minor": ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "G#", "A", "Bb", "B"),
}
ROMANS = ("vii", "iii", "vi", "iv", "ii", "v", "i")  # longest first, for prefix matching
ROMAN_DEGREE = {"i": 0, "ii": 1, "iii": 2, "iv": 3, "v": 4, "vi": 5, "vii": 6}
CHORD_SUFFIX = {  # suffix -> (intervals for an upper-case numeral, for a lower-case one)
    "": ((0, 4, 7), (0, 3, 7)),
    "7": ((0, 4, 7, 10), (0, 3, 7, 10)),
    "maj7": ((0, 4, 7, 11), (0, 3, 7, 11)),
    "6": ((0, 4, 7, 9), (0, 3, 7, 9)),
    "add9": ((0, 4, 7, 14), (0, 3, 7, 14)),
    "sus2": ((0, 2, 7), (0, 2, 7)),
    "sus4": ((0, 5, 7), (0, 5, 7)),
    "o": ((0, 3, 6), (0, 3, 6)),
    "ø7": ((0, 3, 6, 10), (0, 3, 6, 10)),
}
# Playable ranges (MIDI) of the GM programs used here; anything else gets DEFAULT_RANGE.
PROGRAM_RANGES = {
    0: (36, 96), 4: (40, 91), 5: (40, 91), 8: (60, 108), 11: (53, 89), 22: (60, 96), 24: (40, 84),
    25: (40, 84), 27: (40, 86), 29: (40, 86), 30: (40, 86), 32: (28, 55), 33: (28, 60), 34: (28, 60),
    38: (24, 60), 39: (24, 60), 40: (55, 100), 42: (36, 76), 43: (28, 55), 48: (36, 96), 49: (36, 96),
    52: (48, 79), 56: (55, 82), 60: (41, 77), 65: (49, 81), 66: (44, 76), 68: (58, 91), 71: (50, 91),
    73: (60, 96), 80: (36, 96), 81: (36, 96), 88: (36, 96), 89: (36, 96), 90: (36, 96), 91: (36, 96),
    95: (36, 96),
}
DEFAULT_RANGE = (36, 96)


@dataclass(frozen=True)
class Note:
    start: float  # seconds
    duration: float  # seconds
    pitch: int  # MIDI 0-127; on channel 9 the GM percussion key
    velocity: int  # 1-127
    channel: int  # 0-15; 9 = GM drums


@dataclass
class Piece:
    """A composition. ``section_bars[i]`` is the length in bars of ``sections[i]`` (4/4 throughout);
    ``section_spans()`` turns the form into (name, start s, end s), clipped to ``seconds``."""

    notes: list[Note]
    programs: dict[int, int]  # channel -> GM program (0-127); channel 9 has none
    seconds: float
    style: str
    tempo: float  # BPM
    key: str  # "D", "F#", "Bb", ...
    mode: str  # "major" | "minor"
    instruments: list[str]  # plain names for captions
    sections: list[str]  # the form, in order
    seed: int
    section_bars: list[int] = field(default_factory=list)

    def section_spans(self) -> list[tuple[str, float, float]]:
        bar_s = BEATS_PER_BAR * 60.0 / self.tempo
        spans, t = [], 0.0
        for name, bars in zip(self.sections, self.section_bars):
            spans.append((name, t, min(t + bars * bar_s, self.seconds)))
            t += bars * bar_s
        return spans


def key_name(tonic_pc: int, mode: str) -> str:
    return KEY_NAMES[mode][tonic_pc % 12]


def degree_to_pitch(degree: int, tonic: int, mode: str) -> int:
    """Scale degree (0 = tonic, 7 = tonic an octave up, negative below) -> MIDI pitch; tonic is MIDI."""
    return tonic + 12 * (degree // 7) + SCALES[mode][degree % 7]


def parse_chord(symbol: str, tonic_pc: int, mode: str) -> tuple[int, tuple[int, ...]]:
    """Roman numeral ("V7", "bVII", "iiø7", "Imaj7") -> (root pitch class, intervals above the root).
    Degrees count in the key's own scale (in minor, "VI" is the minor sixth); case gives the quality."""
    shift = {"b": -1, "#": 1}.get(symbol[0], 0)
    rest = symbol[1:] if shift else symbol
    numeral = next(r for r in ROMANS if rest.lower().startswith(r))
    upper = rest[: len(numeral)].isupper()
    suffix = rest[len(numeral):]
    root = (tonic_pc + SCALES[mode][ROMAN_DEGREE[numeral]] + shift) % 12
    return root, CHORD_SUFFIX[suffix][0 if upper else 1]


def parse_progression(text: str, tonic_pc: int, mode: str) -> list[tuple[int, tuple[int, ...]]]:
    return [parse_chord(s, tonic_pc, mode) for s in text.split("-")]


def fold(pitch: int, lo: int, hi: int) -> int:
    """Move a pitch by octaves into [lo, hi] (hi - lo >= 11)."""
    while pitch < lo:
        pitch += 12
    while pitch > hi:
        pitch -= 12
    return pitch


def voice_chord(chord, style: Style, prev: list[int] | None) -> list[int]:
    """Pitches for a chord: power (root, fifth, octave), open (spread) or close (the inversion nearest the
    previous voicing, for smooth voice leading)."""
    root, ivs = chord
    low = style.chord_low + (root - style.chord_low) % 12
    if style.voicing == "power":
        return [low, low + 7, low + 12]
    if style.voicing == "open":
        return [low - 12, low + 7] + [low + 12 + i for i in ivs[1:] if i != 7]
    pcs = [(root + i) % 12 for i in ivs]
    options = []
    for inv in range(len(pcs)):
        order = pcs[inv:] + pcs[:inv]
        notes = [style.chord_low + (order[0] - style.chord_low) % 12]
        for pc in order[1:]:
            notes.append(notes[-1] + (pc - notes[-1]) % 12)
        options.append(notes)
    ref = prev if prev else [style.chord_low + 6] * len(pcs)
    return min(options, key=lambda v: abs(sum(v) / len(v) - sum(ref) / len(ref)))


def swing_beat(beat: float, swing: float) -> float:
    """Delay the off-beat eighth (and stretch the 16ths around it) by swing/6 of a beat."""
    whole, frac = divmod(beat, 1.0)
    mid = 0.5 + swing / 6
    return whole + (frac * mid / 0.5 if frac < 0.5 else mid + (frac - 0.5) * (1 - mid) / 0.5)


def make_form(rng, style: Style, total_bars: int) -> tuple[list[str], list[int]]:
    """Section names and bars (4, or 8 for long pieces) covering at least total_bars."""
    length = 8 if total_bars >= 40 else 4
    n = -(-total_bars // length)
    intro, outro = n >= 5, n >= 7
    core = [FORMS[style.form][i % len(FORMS[style.form])] for i in range(n - intro - outro)]
    names = ["intro"] * intro + core + ["outro"] * outro
    return names, [length] * n


def make_motif(rng, bars: int, step: float, density: float) -> list[tuple[float, float, int]]:
    """A motif: (beat, duration in beats, scale-degree offset) - a rhythm on the grid and a contour."""
    slots = int(round(bars * BEATS_PER_BAR / step))
    onsets = [0] + [i for i in range(1, slots - 1) if rng.random() < density]
    steps = rng.choice([-2, -1, -1, 0, 1, 1, 2, 3, -3], size=len(onsets))
    degrees = np.cumsum(np.concatenate([[0], steps[1:]]))
    ends = onsets[1:] + [slots - int(rng.integers(0, 2))]
    return [(o * step, (e - o) * step * 0.92, int(d)) for o, e, d in zip(onsets, ends, degrees)]


def snap_to_chord(degree: int, chord, tonic: int, mode: str) -> int:
    """The nearest scale degree (trying 0, -1, +1, -2, +2, ...) whose pitch class is in the chord."""
    pcs = {(chord[0] + i) % 12 for i in chord[1]}
    for d in (0, -1, 1, -2, 2, -3, 3):
        if degree_to_pitch(degree + d, tonic, mode) % 12 in pcs:
            return degree + d
    return degree


def write_melody(rng, style, chords, bars, tonic, mode, lo, hi) -> list[tuple[float, float, int]]:
    """Melody of a section: a motif repeated over its bars, sequenced by a scale step on the middle
    repetitions, chord tones on strong beats, ending on a held chord tone."""
    motif_bars = int(rng.choice([1, 2]))
    motif = make_motif(rng, motif_bars, style.melody_step, style.density)
    span = [d for _, _, d in motif]
    center = (lo + hi) // 2
    base = 7 * ((center - tonic) // 12) - (min(span) + max(span)) // 2
    seq_step = int(rng.choice([-2, -1, 1, 2]))
    reps = bars // motif_bars
    out = []
    for r in range(reps):
        shift = seq_step * (r % 2) if r < reps - 1 else 0
        for i, (beat, dur, d) in enumerate(motif):
            at = r * motif_bars * BEATS_PER_BAR + beat
            chord = chords[int(at // BEATS_PER_BAR) % len(chords)]
            deg = base + d + shift
            if beat % 2 == 0:
                deg = snap_to_chord(deg, chord, tonic, mode)
            if r == reps - 1 and i == len(motif) - 1:
                deg = snap_to_chord(deg, chord, tonic, mode)
                dur = bars * BEATS_PER_BAR - at - 0.25
            out.append((at, dur, fold(degree_to_pitch(deg, tonic, mode), lo, hi)))
    return out


def bass_bar(rhythm: str, chord, next_chord, rng) -> list[tuple[float, float, int]]:
    """One bar of bass: (beat, beats, pitch) following the chord root and fifth."""
    root = 33 + (chord[0] - 33) % 12
    fifth, octave = root + 7, root + 12
    if rhythm == "whole":
        return [(0, 3.9, root)]
    if rhythm == "half":
        return [(0, 1.9, root), (2, 1.9, fifth if rng.random() < 0.5 else root)]
    if rhythm == "alternating":
        return [(0, 0.9, root), (1, 0.9, fifth - 12 if fifth > 45 else fifth), (2, 0.9, root), (3, 0.9, fifth)]
    if rhythm == "eighths":
        return [(b / 2, 0.45, root if b != 7 else fifth) for b in range(8)]
    if rhythm == "offbeat":
        return [(b + 0.5, 0.4, octave if b == 3 else root) for b in range(4)]
    if rhythm == "boom-bap":
        return [(0, 1.4, root), (1.75, 0.5, root), (2.5, 1.0, fifth), (3.5, 0.4, octave)]
    if rhythm == "pop":
        return [(0, 1.4, root), (1.5, 0.4, root), (2, 0.9, root), (3, 0.9, fifth)]
    # walking: root, a chord tone, the fifth, then a half step into the next root
    nxt = 33 + (next_chord[0] - 33) % 12
    third = root + chord[1][1]
    approach = nxt + (1 if rng.random() < 0.5 else -1)
    return [(0, 0.95, root), (1, 0.95, third), (2, 0.95, fifth), (3, 0.95, fold(approach, 28, 55))]


def comp_bar(comp: str, voicing: list[int], rng) -> list[tuple[float, float, list[int]]]:
    """One bar of chord comping: (beat, beats, pitches)."""
    if comp == "sustain":
        return [(0, 3.95, voicing)]
    if comp == "lofi":
        return [(0, 2.4, voicing), (2.5, 1.4, voicing)]
    if comp == "pulse":
        return [(b, 0.9, voicing) for b in range(4)]
    if comp == "power8":
        return [(b / 2, 0.45, voicing) for b in range(8)]
    if comp == "stabs":
        return [(b + 0.5, 0.25, voicing) for b in range(4)]
    if comp == "strum":
        return [(b, d, voicing) for b, d in ((0, 0.9), (1, 0.45), (1.5, 0.9), (2.5, 0.45), (3, 0.45), (3.5, 0.45))]
    hits = [b / 2 for b in range(8) if rng.random() < 0.3] or [0.0]  # jazz: sparse swung hits
    return [(b, 0.6, voicing) for b in hits]


def drums_bar(pattern: str, fill) -> list[tuple[float, float, int, int]]:
    hits = [(s, key, vel) for key, steps in DRUM_PATTERNS[pattern].items() for s, vel in steps
            if fill is None or s < fill[0][0] or key in (42, 44, 51, 70)]
    hits += [(s, key, 95) for s, key in (fill or ())]
    return [(s / 4, 0.2, key, vel) for s, key, vel in hits]


def write_section(rng, name, bars, style, progression, instruments, tonic, mode, drums):
    """All notes of one section type, as (beat, beats, pitch, velocity, channel) from the section start."""
    chords = [progression[b % len(progression)] for b in range(bars)]
    if name == "outro":
        chords[-1] = (tonic % 12, (0, 4, 7) if mode == "major" else (0, 3, 7))
    loud = QUIET_SECTIONS.get(name, 6)
    chord_lo, chord_hi = PROGRAM_RANGES.get(instruments[CHORDS_CH][0], DEFAULT_RANGE)
    events, prev = [], None
    for b, chord in enumerate(chords):
        prev = voice_chord(chord, style, prev)
        voicing = sorted({fold(p, chord_lo, chord_hi) for p in prev})
        for beat, dur, pitches in comp_bar(style.comp, voicing, rng):
            events += [(b * 4 + beat, dur, p, 68 + loud, CHORDS_CH) for p in pitches]
        nxt = chords[(b + 1) % bars]
        for beat, dur, p in bass_bar(style.bass_rhythm, chord, nxt, rng):
            lo, hi = PROGRAM_RANGES.get(instruments[BASS_CH][0], DEFAULT_RANGE)
            events.append((b * 4 + beat, dur, fold(p, lo, hi), 84 + loud, BASS_CH))
        if drums != "none" and name not in NO_DRUMS:
            fill = FILLS[int(rng.integers(len(FILLS)))] if b == bars - 1 and drums != "sparse" else None
            for beat, dur, key, vel in drums_bar(drums, fill):
                events.append((b * 4 + beat, dur, key, vel + loud // 2, DRUM_CHANNEL))
    if name not in NO_MELODY:
        lo, hi = PROGRAM_RANGES.get(instruments[MELODY_CH][0], DEFAULT_RANGE)
        lo, hi = max(lo, style.melody_center - 12), min(hi, style.melody_center + 12)
        if hi - lo < 12:
            lo, hi = PROGRAM_RANGES.get(instruments[MELODY_CH][0], DEFAULT_RANGE)
        for beat, dur, p in write_melody(rng, style, chords, bars, tonic, mode, lo, hi):
            events.append((beat, dur, p, 92 + loud, MELODY_CH))
    return events


def vary_melody(rng, events, tonic, mode):
    """A returning section: nudge up to a tenth of the melody notes (off the strong beats) by a scale step."""
    melody = [i for i, e in enumerate(events) if e[4] == MELODY_CH and e[0] % 2 != 0]
    out = list(events)
    for i in rng.permutation(melody)[: len([e for e in events if e[4] == MELODY_CH]) // 10]:
        beat, dur, p, vel, ch = out[i]
        deg = 7 * ((p - tonic) // 12) + SCALES[mode].index(min(SCALES[mode], key=lambda s: abs(s - (p - tonic) % 12)))
        out[i] = (beat, dur, degree_to_pitch(deg + int(rng.choice([-1, 1])), tonic, mode), vel, ch)
    return out


def compose(seed: int, seconds: float = 30.0, style: str | None = None) -> Piece:
    """A seeded piece of ``seconds`` in ``style`` (a key of STYLES; None picks one). Same args, same Piece."""
    if seconds <= 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    rng = np.random.default_rng(seed)
    names = sorted(STYLES)
    if style is None:
        style = names[int(rng.integers(len(names)))]
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; one of {names}")
    st = STYLES[style]
    tempo = float(rng.integers(st.tempo[0], st.tempo[1] + 1))
    mode = "minor" if rng.random() < st.minor_prob else "major"
    tonic_pc = int(rng.integers(12))
    tonic = 60 + tonic_pc
    pick = lambda pool: pool[int(rng.integers(len(pool)))]  # noqa: E731
    instruments = {MELODY_CH: pick(st.melody), CHORDS_CH: pick(st.chords), BASS_CH: pick(st.bass)}
    drums = pick(st.drums)
    spb = 60.0 / tempo
    sections, section_bars = make_form(rng, st, int(np.ceil(seconds / (spb * BEATS_PER_BAR))))
    pool = st.major_progressions if mode == "major" else st.minor_progressions
    order = rng.permutation(len(pool))
    written: dict[str, list] = {}
    notes: list[Note] = []
    start_beat = 0
    for idx, (name, bars) in enumerate(zip(sections, section_bars)):
        if name not in written:
            body = [n for n in written if n not in ("intro", "outro")]
            prog_text = pool[order[0]] if name in ("intro", "outro") else pool[order[len(body) % len(pool)]]
            events = write_section(rng, name, bars, st, parse_progression(prog_text, tonic_pc, mode),
                                   instruments, tonic, mode, drums)
            written[name] = events
        else:
            events = vary_melody(rng, written[name], tonic, mode)
        if drums not in ("none", "sparse") and idx > 0 and name not in NO_DRUMS:
            events = events + [(0, 1.0, 49, 100, DRUM_CHANNEL)]  # crash into a new section
        for beat, dur, pitch, vel, ch in events:
            t = (start_beat + swing_beat(beat, st.swing)) * spb + rng.uniform(-JITTER_S, JITTER_S)
            t = max(t, 0.0)
            if t >= seconds:
                continue
            v = int(np.clip(vel + rng.integers(-5, 6), 1, 127))
            notes.append(Note(round(t, 6), round(min(dur * spb, seconds - t), 6), int(pitch), v, ch))
        start_beat += bars * BEATS_PER_BAR
    notes.sort(key=lambda n: (n.start, n.channel, n.pitch))
    programs = {ch: prog for ch, (prog, _) in instruments.items()}
    names_used = [instruments[ch][1] for ch in (MELODY_CH, CHORDS_CH, BASS_CH)]
    inst_names = list(dict.fromkeys(names_used)) + (["drums"] if drums != "none" else [])
    return Piece(notes, programs, float(seconds), style, tempo, key_name(tonic_pc, mode), mode, inst_names,
                 sections, int(seed), section_bars)
