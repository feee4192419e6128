"""What each style plays: tempo, keys, progressions, instruments per role, drum patterns and forms.

Programs are General MIDI (0-127); drum patterns give GM percussion keys on a 16-step bar.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Style:
    tempo: tuple[int, int]  # BPM range
    minor_prob: float  # chance of a minor key
    major_progressions: tuple[str, ...]  # roman numerals, one chord per bar
    minor_progressions: tuple[str, ...]
    melody: tuple[tuple[int, str], ...]  # (GM program, caption name) choices per role
    chords: tuple[tuple[int, str], ...]
    bass: tuple[tuple[int, str], ...]
    drums: tuple[str, ...]  # drum-pattern family choices ("none" = no drums)
    swing: float  # 0 straight .. 1 triplet swing of the off-beat eighth
    melody_step: float  # melody rhythm grid in beats
    density: float  # chance of a melody onset on each grid slot
    comp: str  # chord comping rhythm
    voicing: str  # "close" | "open" | "power"
    chord_low: int  # lowest note of chord voicings
    melody_center: int  # centre of the melody register
    bass_rhythm: str
    form: str  # "song" | "aaba" | "loop" | "rondo" | "club" | "drift"


STYLES: dict[str, Style] = {
    "lo-fi hip hop": Style(
        (70, 90), 0.5, ("Imaj7-vi7-ii7-V7", "Imaj7-IVmaj7-iii7-vi7", "Imaj7-iii7-IVmaj7-V7", "Imaj7-IVmaj7"),
        ("i7-iv7-VII7-IIImaj7", "i7-VImaj7-iv7-v7", "i7-iv7-i7-v7"),
        ((4, "electric piano"), (0, "piano"), (11, "vibraphone"), (73, "flute")),
        ((4, "electric piano"), (0, "piano"), (5, "electric piano")), ((32, "upright bass"), (33, "electric bass")),
        ("boom-bap",), 0.5, 0.5, 0.4, "lofi", "close", 52, 74, "boom-bap", "loop"),
    "jazz": Style(
        (100, 170), 0.3, ("ii7-V7-Imaj7-vi7", "Imaj7-vi7-ii7-V7", "Imaj7-IV7-iii7-vi7", "Imaj7-Imaj7-ii7-V7"),
        ("i7-iv7-iiø7-V7", "i6-i6-iiø7-V7", "i7-VImaj7-iiø7-V7"),
        ((65, "alto sax"), (66, "tenor sax"), (56, "trumpet"), (11, "vibraphone"), (0, "piano")),
        ((0, "piano"), (4, "electric piano")), ((32, "upright bass"),),
        ("swing ride", "brushes"), 0.9, 0.5, 0.55, "jazz", "close", 52, 70, "walking", "aaba"),
    "rock": Style(
        (100, 150), 0.35, ("I-V-vi-IV", "I-IV-V-IV", "I-bVII-IV-I", "I-IV-I-V"),
        ("i-VI-III-VII", "i-VII-VI-VII", "i-iv-VII-i", "i-iv-v-i"),
        ((29, "overdriven guitar"), (30, "distortion guitar"), (27, "clean electric guitar")),
        ((30, "distortion guitar"), (29, "overdriven guitar"), (27, "clean electric guitar")),
        ((33, "electric bass"), (34, "picked bass")),
        ("rock backbeat",), 0.0, 0.5, 0.45, "power8", "power", 40, 70, "eighths", "song"),
    "pop": Style(
        (95, 128), 0.3, ("I-V-vi-IV", "I-vi-IV-V", "I-IV-vi-V", "I-iii-IV-V"),
        ("i-VI-III-VII", "i-iv-VI-V", "i-VI-VII-i"),
        ((0, "piano"), (80, "synth lead"), (27, "electric guitar"), (73, "flute")),
        ((0, "piano"), (4, "electric piano"), (25, "acoustic guitar")), ((33, "electric bass"), (38, "synth bass")),
        ("pop",), 0.0, 0.5, 0.5, "pulse", "close", 55, 72, "pop", "song"),
    "orchestral": Style(
        (60, 110), 0.45, ("I-IV-V7-I", "I-vi-ii-V7", "I-ii-V7-I", "I-V-vi-iii-IV-I-IV-V"),
        ("i-iv-V7-i", "i-VI-iv-V", "i-iio-V7-i", "i-VII-VI-V"),
        ((73, "flute"), (40, "violin"), (68, "oboe"), (71, "clarinet"), (60, "french horn")),
        ((48, "strings"), (49, "string ensemble")), ((42, "cello"), (43, "contrabass")),
        ("none",), 0.0, 0.5, 0.5, "sustain", "open", 48, 76, "half", "rondo"),
    "ambient": Style(
        (60, 80), 0.5, ("Imaj7-IVmaj7", "Iadd9-vi7-IVmaj7-Iadd9", "Imaj7-iii7-IVmaj7-Imaj7"),
        ("i7-VImaj7", "i-iv7-VImaj7-i", "i7-VImaj7-IIImaj7-i7"),
        ((8, "celesta"), (11, "vibraphone"), (0, "piano"), (73, "flute")),
        ((89, "warm pads"), (88, "new age pads"), (52, "choir"), (95, "sweep pads")), ((42, "cello"), (89, "low pads")),
        ("none", "none", "sparse"), 0.0, 1.0, 0.45, "sustain", "open", 48, 76, "whole", "drift"),
    "electronic": Style(
        (120, 135), 0.7, ("I-I-IV-IV", "I-IV-vi-V", "I-vi-IV-V"),
        ("i-i-VI-VII", "i-VII-VI-VII", "i-iv-i-iv", "i-VI-iv-VII"),
        ((81, "saw lead"), (80, "square lead")),
        ((90, "polysynth"), (89, "warm pads"), (95, "sweep pads")), ((38, "synth bass"), (39, "synth bass")),
        ("four-on-the-floor",), 0.0, 0.25, 0.45, "stabs", "close", 55, 72, "offbeat", "club"),
    "folk": Style(
        (80, 120), 0.35, ("I-IV-I-V", "I-V-vi-IV", "I-IV-V-I", "I-vi-IV-V"),
        ("i-VII-i-v", "i-iv-VII-i", "i-VI-VII-i"),
        ((73, "flute"), (40, "fiddle"), (22, "harmonica")),
        ((25, "acoustic guitar"), (24, "nylon guitar")), ((32, "upright bass"),),
        ("folk", "none"), 0.0, 0.5, 0.5, "strum", "close", 48, 74, "alternating", "song"),
}

# Core forms, cycled to fill the piece; "intro"/"outro" are added around them when there is room.
FORMS = {
    "song": ("verse", "chorus", "verse", "chorus", "bridge", "chorus"),
    "aaba": ("A", "A", "B", "A"),
    "loop": ("A", "B", "A", "B"),
    "rondo": ("theme", "episode", "theme", "development", "theme"),
    "club": ("build", "drop", "break", "drop"),
    "drift": ("A", "B", "A", "C"),
}
QUIET_SECTIONS = {"intro": -14, "outro": -12, "break": -8, "build": -6, "verse": -4, "A": 0, "theme": 0}
NO_MELODY = {"intro", "outro", "build"}
NO_DRUMS = {"intro", "break"}

# Drum patterns: GM key -> (16th step, velocity) per bar.
DRUM_PATTERNS = {
    "boom-bap": {36: ((0, 100), (7, 70), (10, 95)), 38: ((4, 100), (12, 100)),
                 42: tuple((s, 60 + 15 * (s % 4 == 0)) for s in range(0, 16, 2))},
    "rock backbeat": {36: ((0, 110), (8, 105), (10, 90)), 38: ((4, 110), (12, 110)),
                      42: tuple((s, 70 + 15 * (s % 4 == 0)) for s in range(0, 16, 2))},
    "pop": {36: ((0, 105), (6, 80), (8, 100)), 38: ((4, 100), (12, 100)), 54: ((4, 60), (12, 60)),
            42: tuple((s, 55 + 20 * (s % 4 == 0)) for s in range(0, 16, 2))},
    "four-on-the-floor": {36: ((0, 115), (4, 115), (8, 115), (12, 115)), 39: ((4, 95), (12, 95)),
                          42: ((2, 80), (6, 80), (10, 80), (14, 80)), 46: ((14, 60),)},
    "swing ride": {51: ((0, 85), (4, 80), (6, 65), (8, 85), (12, 80), (14, 65)), 44: ((4, 70), (12, 70)),
                   36: ((0, 45),)},
    "brushes": {38: tuple((s, 35 + 10 * (s % 4 == 0)) for s in range(0, 16, 2)), 51: ((0, 60), (8, 60)),
                44: ((4, 60), (12, 60))},
    "folk": {36: ((0, 80), (8, 75)), 37: ((4, 70), (12, 70)), 70: tuple((s, 45) for s in range(0, 16, 2))},
    "sparse": {36: ((0, 60),), 70: ((8, 35),)},
}
FILLS = (((8, 38), (10, 38), (12, 50), (13, 48), (14, 45), (15, 43)),
         ((12, 38), (13, 38), (14, 38), (15, 38)),
         ((8, 50), (10, 48), (12, 45), (14, 41)))
