"""The procedural composer and its captions: validity, determinism, form, key, tempo grid, captions."""

import re

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from musicgen_cli.data.captions import STYLE_NOUNS, caption, style_of_caption, tempo_word
from musicgen_cli.data.compose import (
    DEFAULT_RANGE, DRUM_CHANNEL, JITTER_S, KEY_NAMES, PROGRAM_RANGES, STYLES, Note, Piece, compose, parse_chord, swing_beat,
)

from musicgen_cli.evaluate.features import KK_MAJOR, KK_MINOR  # noqa: E402  Krumhansl-Kessler, index 0 = tonic

PC = {n: i for names in KEY_NAMES.values() for i, n in enumerate(names)}


def check_valid(piece: Piece) -> None:
    assert piece.notes, "a piece has notes"
    starts = [n.start for n in piece.notes]
    assert starts == sorted(starts)
    for n in piece.notes:
        assert isinstance(n, Note)
        assert 0.0 <= n.start < piece.seconds
        assert 0.0 < n.duration and n.start + n.duration <= piece.seconds + 1e-9
        assert 0 <= n.pitch <= 127 and 1 <= n.velocity <= 127 and 0 <= n.channel <= 15
        if n.channel == DRUM_CHANNEL:
            assert 27 <= n.pitch <= 87  # GM percussion keys
        else:
            lo, hi = PROGRAM_RANGES.get(piece.programs[n.channel], DEFAULT_RANGE)
            assert lo <= n.pitch <= hi, (piece.programs[n.channel], n)
    assert DRUM_CHANNEL not in piece.programs
    assert all(0 <= p <= 127 for p in piece.programs.values())
    if any(n.channel == DRUM_CHANNEL for n in piece.notes):
        assert "drums" in piece.instruments
    assert piece.key in KEY_NAMES[piece.mode] and piece.style in STYLES
    assert STYLES[piece.style].tempo[0] <= piece.tempo <= STYLES[piece.style].tempo[1]
    spans = piece.section_spans()
    assert len(spans) == len(piece.sections) and spans[0][1] == 0.0 and spans[-1][2] == piece.seconds
    assert all(bars in (4, 8) for bars in piece.section_bars)


@pytest.mark.parametrize("style", sorted(STYLES))
@pytest.mark.parametrize("seconds", [10.0, 30.0, 47.3])
def test_every_style_composes_valid_pieces(style, seconds):
    for seed in range(4):
        piece = compose(seed, seconds, style)
        assert piece.style == style and piece.seconds == seconds and piece.seed == seed
        check_valid(piece)


def test_same_seed_same_piece_and_different_seeds_differ():
    assert compose(7) == compose(7)
    assert compose(7, 20.0, "jazz") == compose(7, 20.0, "jazz")
    pieces = [compose(s) for s in range(10)]
    assert len({tuple(p.notes) for p in pieces}) == 10
    assert len({p.style for p in pieces}) >= 3 and len({(p.key, p.mode) for p in pieces}) >= 5


def test_unknown_style_and_bad_duration_are_refused():
    with pytest.raises(ValueError):
        compose(0, 10.0, "polka")
    with pytest.raises(ValueError):
        compose(0, 0.0)


def test_roman_numerals():
    assert parse_chord("V7", 0, "major") == (7, (0, 4, 7, 10))
    assert parse_chord("bVII", 0, "major") == (10, (0, 4, 7))
    assert parse_chord("VI", 9, "minor") == (5, (0, 4, 7))  # F in A minor
    assert parse_chord("iiø7", 9, "minor") == (11, (0, 3, 6, 10))
    assert parse_chord("Imaj7", 2, "major") == (2, (0, 4, 7, 11))


def _section_notes(piece, span, channels):
    _, start, end = span
    return [(n.start - start, n.pitch, n.channel) for n in piece.notes
            if n.channel in channels and start - 0.02 <= n.start < end - 0.02]


def _misses(first, second, horizon):
    """(How many of ``first``'s notes before ``horizon`` (relative s) ``second`` lacks, within jitter; of how many)."""
    first = [f for f in first if f[0] < horizon]
    hits = sum(any(p == q and c == d and abs(t - u) <= 2 * JITTER_S + 1e-6 for u, q, d in second)
               for t, p, c in first)
    return len(first) - hits, len(first)


def test_a_returning_section_repeats_its_music():
    checked = 0
    for style in sorted(STYLES):
        for seed in range(3):
            piece = compose(seed, 30.0, style)
            spans = piece.section_spans()
            seen = {}
            for i, (name, start, end) in enumerate(spans):
                if name in seen:
                    first = spans[seen[name]]
                    horizon = min(end, piece.seconds - 0.05) - start
                    for channels, need in (({1, 2}, 1.0), ({0}, 0.7), ({DRUM_CHANNEL}, 0.85)):
                        a = _section_notes(piece, first, channels)
                        b = _section_notes(piece, spans[i], channels)
                        misses, total = _misses(a, b, horizon)
                        assert misses <= max(1 if need < 1 else 0, (1 - need) * total), (style, seed, name, channels)
                    checked += 1
                    break
                seen[name] = i
    assert checked >= 18  # most style/seed pairs repeat a section within 30 s


def _estimated_key(piece):
    hist = np.zeros(12)
    for n in piece.notes:
        if n.channel != DRUM_CHANNEL:
            hist[n.pitch % 12] += n.duration
    best = max(((np.corrcoef(hist, np.roll(prof, tonic))[0, 1], tonic, mode)
                for prof, mode in ((KK_MAJOR, "major"), (KK_MINOR, "minor")) for tonic in range(12)))
    return best[1], best[2]


def test_notes_are_in_the_pieces_key():
    pieces = [compose(seed, 30.0) for seed in range(30)]
    right = sum(_estimated_key(p) == (PC[p.key], p.mode) for p in pieces)
    assert right >= 24, right


def test_drum_and_bass_onsets_sit_on_the_beat_grid():
    for style in sorted(STYLES):
        for seed in range(3):
            piece = compose(seed, 30.0, style)
            spb, swing = 60.0 / piece.tempo, STYLES[piece.style].swing
            for n in piece.notes:
                if n.channel not in (DRUM_CHANNEL, 2) or n.start == 0.0:
                    continue
                k = round(n.start / spb * 4)
                grid = [swing_beat(j / 4, swing) * spb for j in (k - 1, k, k + 1)]
                assert min(abs(n.start - g) for g in grid) <= JITTER_S + 1e-6, (style, seed, n)


def test_captions_name_the_style_and_are_true_and_varied():
    texts = []
    for seed in range(80):
        piece = compose(seed, 20.0)
        text = caption(piece, np.random.default_rng(seed))
        assert text == caption(piece, np.random.default_rng(seed))
        texts.append(text)
        assert style_of_caption(text) == piece.style, text
        for bpm in re.findall(r"(\d+) bpm", text, flags=re.I):
            assert int(bpm) == round(piece.tempo)
        for tonic, mode in re.findall(r"\b([A-G][#b]?) (major|minor)\b", text):
            assert (tonic, mode) == (piece.key, piece.mode), text
        for word in ("slow", "medium tempo", "fast"):
            if word in text:
                assert tempo_word(piece.tempo) == word
    assert len(set(texts)) >= 75
    assert all(len(set(nouns)) == len(nouns) for nouns in STYLE_NOUNS.values())


def test_tempo_words():
    assert [tempo_word(b) for b in (60, 90, 120, 140)] == ["slow", "medium tempo", "upbeat", "fast"]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), seconds=st.floats(1.0, 60.0), style=st.sampled_from(sorted(STYLES)))
def test_any_seed_duration_and_style_gives_a_valid_piece(seed, seconds, style):
    piece = compose(seed, seconds, style)
    assert piece.notes and all(0 <= n.start < seconds for n in piece.notes)
    assert [n.start for n in piece.notes] == sorted(n.start for n in piece.notes)
    assert all(n.channel in piece.programs or n.channel == DRUM_CHANNEL for n in piece.notes)
    assert sum(piece.section_bars) * 4 * 60.0 / piece.tempo >= seconds - 1e-9


def test_styles_are_well_formed():
    assert {"lo-fi hip hop", "jazz", "rock", "pop", "orchestral", "ambient", "electronic", "folk"} <= set(STYLES)
    for name, style in STYLES.items():
        for role in (style.melody, style.chords, style.bass):
            assert role and all(0 <= prog <= 127 and prog in PROGRAM_RANGES and label for prog, label in role)
        for mode, pool in (("major", style.major_progressions), ("minor", style.minor_progressions)):
            for text in pool:
                for tonic in range(12):
                    assert all(0 <= root < 12 for root, _ in (parse_chord(c, tonic, mode) for c in text.split("-")))
        assert name in STYLE_NOUNS
