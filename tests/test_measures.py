"""Every measure we report must also be able to report failure (musicgen_cli/evaluate/report.py).

Two stand-in "models" play back synthesised audio through the report's own functions: a faithful
one plays each caption's own piece (its style, key and tempo; the melody it was given), a deaf one
plays the same unrelated piece whatever it is asked. The report must praise the first and fail
the second: style near chance, no key right, tempo far off, melody agreement near chance and no
better than text alone, no structure. A measure that always said the same would fail one of them.
"""

from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch

from musicgen_cli import melody_eval
from musicgen_cli.data import dataset as ds
from musicgen_cli.evaluate import features as F
from musicgen_cli.evaluate import report
from test_eval_features import _drums, _sequence

SR = F.SAMPLE_RATE
SECONDS = 8.0
MAJOR, MINOR = (0, 4, 7), (0, 3, 7)
PIECES = [("calm", 80, "D", "major"), ("busy", 150, "F", "major"), ("calm", 70, "A", "minor"),
          ("busy", 160, "E", "minor"), ("calm", 90, "G", "major"), ("busy", 140, "C", "minor")]


def piece(style: str, bpm: float, key: str, mode: str, seed: int = 0, seconds: float = SECONDS) -> np.ndarray:
    """A progression I-IV-V-I in `key` over drums at `bpm`: a slow low kick (calm) or bright noise (busy)."""
    rng = np.random.default_rng(seed)
    root = 48 + F.pitch_class(key)
    triad = MAJOR if mode == "major" else MINOR
    chords = [[root + step + p for p in (triad if step in (0, 5) else MAJOR)] for step in (0, 5, 7, 0)]
    tones = _sequence(chords, seconds / 4)
    drums = _drums(bpm, seconds, rng, off_beat=0.0, low=style == "calm", bright=style == "busy")
    return (tones + 0.5 * drums[: len(tones)]).astype(np.float32)


def tune(seed: int, seconds: float = SECONDS) -> np.ndarray:
    """Random notes, a quarter second each: a melody unrelated to any other seed's."""
    return _sequence(np.random.default_rng(100 + seed).integers(60, 84, int(seconds * 4)), 0.25)


class Playback:
    """A stand-in model: its "codes" are the audio `play(caption, melody)` returns; the codec passes them on."""

    def __init__(self, play):
        self.play = play
        self.codec = SimpleNamespace(decode=lambda codes: codes)

    def generate_codes(self, prompts, seconds, options, melody=None):
        audio = self.play(prompts[0], None if melody is None else melody[0].numpy())
        return torch.from_numpy(audio[: int(seconds * SR)])[None, None]


@pytest.fixture(scope="module")
def items(tmp_path_factory):
    folder = tmp_path_factory.mktemp("measures")
    out = []
    for seed, (style, bpm, key, mode) in enumerate(PIECES):
        mix, melody = folder / f"{seed}-mix.wav", folder / f"{seed}-melody.wav"
        sf.write(mix, piece(style, bpm, key, mode, seed), SR, subtype="FLOAT")
        sf.write(melody, tune(seed), SR, subtype="FLOAT")
        out.append(ds.Item(seed, f"{style} piece in {key} {mode} at {bpm} bpm", style, bpm, key, mode, mix, melody))
    return out


@pytest.fixture(scope="module")
def classifier():
    """Fitted on other renditions (seeds, keys, tempi) of the two styles."""
    rng = np.random.default_rng(7)
    labels = ["calm", "busy"] * 8
    clips = [piece(s, rng.uniform(60, 95) if s == "calm" else rng.uniform(135, 170), F.KEY_NAMES[rng.integers(12)],
                   ["major", "minor"][rng.integers(2)], seed=50 + i, seconds=4.0) for i, s in enumerate(labels)]
    return F.StyleClassifier().fit(np.stack([F.style_features(c) for c in clips]), labels)


def faithful(items):
    by_caption = {i.caption: ds.read(i.mix) for i in items}
    by_caption.update({i.style: ds.read(i.mix) for i in reversed(items)})  # a style alone: its first piece
    return Playback(lambda caption, melody: by_caption[caption] if melody is None else melody)


DEAF = Playback(lambda caption, melody: piece("busy", 113, "Eb", "major", seed=99))  # the same, whatever is asked


def test_text_control_reports_success_and_failure(items, classifier):
    good = report.text_control(faithful(items), classifier, items, SECONDS)
    assert good["style_accuracy"] == 1.0 and good["key_accuracy"] == 1.0, good["rows"]
    assert good["tempo_error_bpm_median_octave"] < 5.0, good["rows"]
    bad = report.text_control(DEAF, classifier, items, SECONDS)
    assert bad["style_accuracy"] == 0.5  # always "busy": right only for the busy half
    assert bad["key_accuracy"] == 0.0, bad["rows"]
    assert bad["tempo_error_bpm_median_octave"] > 20.0, bad["rows"]
    assert {r["heard_key"] for r in bad["rows"]} == {"Eb major"} and {r["heard"] for r in bad["rows"]} == {"busy"}


def test_key_and_tempo_count_only_captions_that_name_them(items, classifier):
    """The key and tempo figures judge a caption only on what it asks for."""
    silent = [ds.Item(i.seed, f"{i.style} piece", i.style, i.tempo, i.key, i.mode, i.mix, i.melody) for i in items]
    mixed = silent[:3] + items[3:]  # the deaf model's key and tempo are wrong for every piece
    deaf = report.text_control(DEAF, classifier, mixed, SECONDS)
    assert deaf["key_accuracy_when_named"] == 0.0 and deaf["tempo_within_5pct_when_named"] == 0.0
    good = report.text_control(faithful(items), classifier, items, SECONDS)
    assert good["key_accuracy_when_named"] == 1.0 and good["tempo_within_5pct_when_named"] == 1.0, good["rows"]
    unnamed = report.text_control(DEAF, classifier, silent, SECONDS)
    assert np.isnan(unnamed["key_accuracy_when_named"]) and np.isnan(unnamed["tempo_within_5pct_when_named"])


def test_gates_pass_a_faithful_model_and_fail_a_deaf_one(items, classifier):
    def full(mg):
        return {"text_control": report.text_control(mg, classifier, items, SECONDS),
                "melody": report.melody_following(mg, items, SECONDS),
                "structure_30s": report.structure(mg, items[:2], items[:2], SECONDS),
                "style_classifier_accuracy_on_heldout_renders": 0.9, "size_mb": 40.0}

    good, bad = report.gates(full(faithful(items))), report.gates(full(DEAF))
    assert all(v for k, v in good.items() if k != "structure_contrast"), good
    deaf_to = ("key_heard_when_named", "tempo_within_5pct_when_named", "style_heard", "melody_followed")
    assert not any(bad[k] for k in deaf_to), bad
    assert not report.gates({**full(DEAF), "size_mb": 61.0})["size"]
    nan = full(DEAF)
    nan["text_control"]["key_accuracy_when_named"] = float("nan")
    assert not report.gates(nan)["key_heard_when_named"]


def test_every_key_is_told_apart():
    """A key finder that ignored the audio would be right for at most one of the twelve."""
    for tonic in F.KEY_NAMES:
        assert F.key(piece("calm", 80, tonic, "minor", seconds=4.0)) == (F.pitch_class(tonic), "minor"), tonic


def test_melody_following_reports_success_and_failure(items):
    good = report.melody_following(faithful(items), items, SECONDS)
    assert good["with_melody"] > 0.9 and good["text_only"] < 0.3, good
    bad = report.melody_following(DEAF, items, SECONDS)
    assert bad["with_melody"] < 0.3 and bad["with_melody"] == bad["text_only"], bad  # near chance (1/12)


def test_melody_eval_similarity_fails_an_unrelated_tune():
    melody = melody_eval.test_melody(6.0)
    echo = Playback(lambda caption, m: m)
    echo.sample_rate = SR
    echo.codec.decode = lambda codes: codes[:, None]  # [B, channels, samples]
    assert melody_eval.similarity(echo, melody, "x", 6.0, 0, follow=True) > 0.95
    unrelated = Playback(lambda caption, m: tune(3, 6.0))
    unrelated.sample_rate, unrelated.codec.decode = SR, echo.codec.decode
    assert melody_eval.similarity(unrelated, melody, "x", 6.0, 0, follow=True) < 0.25


def test_structure_reports_failure_for_a_drone(items):
    t = np.arange(int(12 * SR)) / SR
    drone = Playback(lambda caption, melody: (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32))
    phrase = [(60, 64, 67), (65, 69, 72), (67, 71, 74), (60, 64, 67)]
    returning = Playback(lambda caption, melody: _sequence(phrase * 3, 1.0))
    flat = report.structure(drone, items[:2], items[:2], 12.0)
    assert flat["generated_contrast"] < 0.05 and flat["generated_repetition"] > 0.95
    shaped = report.structure(returning, items[:2], items[:2], 12.0)
    assert shaped["generated_contrast"] > 0.2, shaped
