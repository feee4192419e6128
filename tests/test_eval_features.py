"""Audio features for evaluation, on synthetic signals built here with numpy."""

import numpy as np
import pytest

from musicgen_cli.evaluate import features as F

SR = F.SAMPLE_RATE


def _midi_hz(midi: float) -> float:
    return 440.0 * 2 ** ((midi - 69) / 12)


def _harmonic(midis, seconds: float, harmonics: int = 3, amplitude: float = 0.2) -> np.ndarray:
    """The notes ``midis`` sounding together for ``seconds``, each with a few harmonics, faded in and out."""
    t = np.arange(int(seconds * SR)) / SR
    fade = np.minimum(1.0, np.minimum(t, seconds - t) / 0.01)
    tone = sum(amplitude / h * np.sin(2 * np.pi * h * _midi_hz(m) * t) for m in midis for h in range(1, harmonics + 1))
    return tone * fade


def _sequence(notes, seconds: float) -> np.ndarray:
    """One note after another (single notes or chords), ``seconds`` each, float32."""
    return np.concatenate([_harmonic(np.atleast_1d(n), seconds) for n in notes]).astype(np.float32)


def _drums(bpm: float, seconds: float, rng, off_beat: float = 0.2, low: bool = False, bright: bool = False):
    """A decaying noise burst on every beat and a softer 6 kHz blip half-way between beats."""
    out = 1e-3 * rng.standard_normal(int(seconds * SR))
    n = int(0.05 * SR)
    t = np.arange(n) / SR
    decay = np.exp(-t / 0.01)
    hit = rng.standard_normal(n) * decay
    if low:  # a kick-like low sine instead of noise
        hit = np.sin(2 * np.pi * 60 * t) * np.exp(-t / 0.03)
    if bright:  # first difference: a high-passed, hi-hat-like burst
        hit = np.diff(hit, prepend=0.0)
    blip = np.sin(2 * np.pi * 6000 * t) * decay
    period = 60.0 / bpm
    for k in range(int(seconds / period) + 1):
        for phase, sound, gain in ((0.0, hit, 0.8), (0.5, blip, off_beat)):
            start = int((k + phase) * period * SR)
            piece = out[start:start + n]
            piece += gain * sound[:len(piece)]
    return out.astype(np.float32)


@pytest.mark.parametrize("bpm", [70, 90, 120, 150])
def test_tempo_of_click_tracks(bpm):
    estimate = F.tempo(_drums(bpm, 20.0, np.random.default_rng(bpm)))
    assert F.tempo_error(estimate, bpm) < 0.04 * bpm, estimate
    assert F.octave_tempo_error(estimate, bpm) < 0.04 * bpm


def test_tempo_errors():
    assert F.tempo_error(118.0, 120.0) == pytest.approx(2.0)
    assert F.tempo_error(240.0, 120.0) == pytest.approx(120.0)
    assert F.octave_tempo_error(240.0, 120.0) == 0.0
    assert F.octave_tempo_error(61.0, 120.0) == pytest.approx(1.0)
    assert F.octave_tempo_error(90.0, 120.0) == pytest.approx(30.0)


def test_onset_envelope_peaks_on_beats():
    env, rate = F.onset_envelope(_drums(120, 4.0, np.random.default_rng(0), off_beat=0.0))
    assert rate == 100.0
    assert len(env) == pytest.approx(4.0 * rate, abs=2)
    assert env.min() >= 0
    peaks = np.flatnonzero(env > 0.5 * env.max())
    assert set(np.round(peaks / 50).astype(int)) <= {0, 1, 2, 3, 4, 5, 6, 7, 8}
    assert np.all(np.abs(peaks - 50 * np.round(peaks / 50)) <= 2)  # every strong onset within 20 ms of a beat


def test_log_mel_shape_and_floor():
    mel = F.log_mel(np.zeros(SR, dtype=np.float32))
    assert mel.shape == (101, 64) and mel.dtype == np.float32
    assert np.allclose(mel, np.log(1e-6))
    # Slaney mel scale: linear (3 bands per 200 Hz) below 1 kHz, logarithmic above; 64 bands, 20 Hz-16 kHz
    def mel(hz):
        return np.where(hz < 1000, 3 * hz / 200, 15 + np.log(np.maximum(hz, 1e-9) / 1000) / (np.log(6.4) / 27))

    centres = np.linspace(mel(20.0), mel(16000.0), 66)[1:-1]
    for midi in (69, 93, 117):  # 440 Hz, 1760 Hz, 7040 Hz
        tone = F.log_mel(_harmonic([midi], 1.0, harmonics=1).astype(np.float32))
        assert int(tone.mean(0).argmax()) == int(np.abs(centres - mel(_midi_hz(midi))).argmin())


def test_key_of_chord_progressions():
    d_major = [(62, 66, 69), (67, 71, 74), (69, 73, 76), (62, 66, 69)]  # D  G  A  D
    a_minor = [(57, 60, 64), (62, 65, 69), (64, 68, 71), (57, 60, 64)]  # Am Dm E  Am
    assert F.key(_sequence(d_major, 2.0)) == (F.pitch_class("D"), "major")
    assert F.key(_sequence(a_minor, 2.0)) == (F.pitch_class("A"), "minor")
    assert F.key(_sequence([[p + 3 for p in chord] for chord in d_major], 2.0)) == (F.pitch_class("F"), "major")


def test_pitch_class_names():
    assert F.pitch_class("Bb") == F.pitch_class("A#") == 10
    assert F.pitch_class("Eb") == F.pitch_class("D#") == 3
    assert F.pitch_class("F#") == F.pitch_class("Gb") == 6
    assert F.pitch_class("G#") == F.pitch_class("Ab") == 8
    assert F.pitch_class("C#") == F.pitch_class("Db") == 1
    assert [F.pitch_class(name) for name in F.KEY_NAMES] == list(range(12))
    assert F.pitch_class("d") == 2
    with pytest.raises(ValueError):
        F.pitch_class("H")


def test_repeated_phrase_scores_higher_than_random_notes():
    rng = np.random.default_rng(0)
    phrase = rng.integers(60, 84, 16)  # 16 notes of 0.25 s: a 4 s phrase
    repeated = _sequence(np.tile(phrase, 3), 0.25)
    random_notes = _sequence(rng.integers(48, 96, 48), 0.25)
    sim = F.self_similarity(repeated)
    assert sim.shape == (24, 24) and np.allclose(np.diag(sim), 1.0, atol=1e-5)
    assert sim[4, 12] > 0.99  # 2 s into the first and second plays
    high, low = F.repetition(repeated), F.repetition(random_notes)
    assert high > 0.8 and high - low > 0.1, (high, low)
    assert np.isnan(F.repetition(repeated[: SR]))  # 1 s: nothing 2 s earlier


def test_si_snr():
    rng = np.random.default_rng(0)
    reference = _sequence([60, 64, 67, 72], 0.5) + 0.05 * rng.standard_normal(2 * SR).astype(np.float32)
    same = F.si_snr(reference, reference)
    assert same > 60
    assert F.si_snr(reference, 0.5 * reference) > 60
    noise = rng.standard_normal(len(reference))
    noise *= np.sqrt(np.mean((reference - reference.mean()) ** 2) / np.mean(noise**2) / 10)  # 10 dB below
    noisy = F.si_snr(reference, reference + noise)
    assert noisy == pytest.approx(10.0, abs=0.5)
    assert F.si_snr(reference, 0.3 * (reference + noise) + 0.1) == pytest.approx(noisy, abs=1e-6)  # scale, offset
    assert F.si_snr(reference, noise) < -10


def test_mel_distance():
    rng = np.random.default_rng(0)
    reference = _sequence([60, 64, 67, 72], 0.5)
    noise = rng.standard_normal(len(reference)).astype(np.float32)
    assert F.mel_distance(reference, reference) == 0.0
    distances = [F.mel_distance(reference, reference + level * noise) for level in (0.001, 0.01, 0.1)]
    assert 0 < distances[0] < distances[1] < distances[2]
    assert F.mel_distance(reference, reference[: SR]) == 0.0  # cut to the shorter one


def _style_clip(style: str, rng) -> np.ndarray:
    """3 s of "calm" (low tones, slow kick) or "busy" (bright noise bursts, fast) music, randomly varied."""
    if style == "calm":
        notes = rng.integers(36, 52, 6)
        tones = _sequence(notes, 0.5) * rng.uniform(0.5, 1.0)
        return (tones + _drums(rng.uniform(60, 90), 3.0, rng, off_beat=0.0, low=True)).astype(np.float32)
    return _drums(rng.uniform(140, 170), 3.0, rng, off_beat=rng.uniform(0.1, 0.4), bright=True) * rng.uniform(0.5, 1.0)


def test_style_classifier_learns_signal_not_noise():
    rng = np.random.default_rng(0)
    labels = ["calm", "busy"] * 20
    features = np.stack([F.style_features(_style_clip(label, rng)) for label in labels])
    assert features.shape == (40, 145) and features.dtype == np.float32 and np.isfinite(features).all()
    train, test = slice(0, 20), slice(20, 40)
    classifier = F.StyleClassifier().fit(features[train], labels[train])
    assert classifier.predict(features[:2]) == ["calm", "busy"]
    assert classifier.accuracy(features[test], labels[test]) >= 0.9
    chance = []  # labels shuffled with seeds 0-9, unrelated to the audio: held-out accuracy near 0.5
    for seed in range(10):
        shuffled = list(np.random.default_rng(seed).permutation(labels))
        fitted = F.StyleClassifier().fit(features[train], shuffled[train])
        chance.append(fitted.accuracy(features[test], shuffled[test]))
    assert np.mean(chance) <= 0.65, chance  # measured 0.555 (each seed 0.35-0.75)


def test_structure_contrast_is_zero_for_unchanging_audio_and_positive_for_returning_phrases():
    t = np.arange(12 * SR) / SR
    drone = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    assert abs(F.structure_contrast(drone)) < 0.05
    rng = np.random.default_rng(0)
    phrase = np.concatenate([0.3 * np.sin(2 * np.pi * 220 * 2 ** (p / 12) * t[: SR // 2]) for p in rng.integers(0, 12, 8)])
    assert F.structure_contrast(np.tile(phrase, 3).astype(np.float32)) > 0.2
