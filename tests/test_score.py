"""Melodies written, not hummed: chroma from MIDI files and chord charts, against the audio path."""

import os
import subprocess
import sys

import mido
import numpy as np
import pytest
import soundfile as sf
import torch

from musicgen_cli import chroma, score
from musicgen_cli.errors import MusicgenError

OFFLINE = {**os.environ, "HF_HUB_OFFLINE": "1"}


def write_midi(path, tracks, tempos=((0, 120),), ticks=480):
    """tracks: {name: [(start beat, beats, pitch, channel)]}; tempos: [(beat, bpm)] in track 0."""
    midi = mido.MidiFile(ticks_per_beat=ticks)
    conductor = mido.MidiTrack([mido.MetaMessage("track_name", name="conductor")])
    last = 0
    for beat, bpm in tempos:
        conductor.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=round(beat * ticks) - last))
        last = round(beat * ticks)
    midi.tracks.append(conductor)
    for name, notes in tracks.items():
        events = []
        for start, beats, pitch, channel in notes:
            events += [(round(start * ticks), "note_on", pitch, channel), (round((start + beats) * ticks), "note_off", pitch, channel)]
        track, now = mido.MidiTrack([mido.MetaMessage("track_name", name=name)]), 0
        for tick, kind, pitch, channel in sorted(events, key=lambda e: (e[0], e[1] == "note_on")):
            track.append(mido.Message(kind, note=pitch, velocity=80, channel=channel, time=tick - now))
            now = tick
        midi.tracks.append(track)
    midi.save(path)
    return path


def classes(c):
    return c.argmax(-1)


@pytest.mark.parametrize("name,root", [("C", 0), ("Am", 9), ("F#m7", 6), ("Bbmaj7", 10), ("Ebsus4", 3),
                                       ("G7", 7), ("C/G", 0), ("Dbdim", 1), ("B°", None), ("H7", None),
                                       ("Cmaj13#11", None), ("", None)])
def test_chord_spellings(name, root):
    if root is None:
        with pytest.raises(MusicgenError, match="unknown chord"):
            score.chord_root(name)
    else:
        assert score.chord_root(name) == root


def test_a_chord_chart_fills_each_span_with_its_root():
    c, seconds = score.chords_chroma("Am F | C, G", bpm=90, beats_per_chord=4)  # 2.667 s a chord
    assert seconds == pytest.approx(4 * 8 / 3)
    assert c.shape == (round(4 * 60 / 90 * 4 * score.FRAME_RATE), 12) and np.all(c.sum(-1) == 1)
    times = np.arange(len(c)) / score.FRAME_RATE
    expected = np.array([9, 5, 0, 7])[np.minimum((times / (8 / 3)).astype(int), 3)]
    assert np.array_equal(classes(c), expected)
    with pytest.raises(MusicgenError, match="unknown chord 'Xm'"):
        score.chords_chroma("Am Xm", bpm=90)


def test_midi_melody_track_tempo_map_and_drums(tmp_path):
    lead = [(0, 2, 72, 0), (2, 2, 76, 0), (4, 4, 79, 0)]  # C5 E5 G5
    bass = [(0, 8, 40, 1)]  # E2 under it all
    drums = [(0, 8, 90, 9)]  # high note on channel 10: never the melody
    path = write_midi(tmp_path / "song.mid", {"Lead": lead, "Bass": bass, "Kit": drums},
                      tempos=((0, 120), (4, 60)))  # beats 0-4 at 120 bpm (2 s), 4-8 at 60 (4 s)
    notes = score.midi_notes(path)
    assert [(round(s, 3), round(e, 3), p) for s, e, p in notes] == [(0, 1, 72), (1, 2, 76), (2, 6, 79)]
    c, seconds = score.midi_chroma(path)
    assert seconds == pytest.approx(6.0)
    t = np.arange(len(c)) / score.FRAME_RATE
    assert len(c) == round(6 * score.FRAME_RATE)
    assert np.array_equal(classes(c), np.where(t < 1, 0, np.where(t < 2, 4, 7)))
    assert np.all(classes(score.midi_chroma(path, track="Bass")[0]) == 4)  # the named track
    everything = write_midi(tmp_path / "all.mid", {"piano": lead, "strings": bass})  # no melody-named track
    assert np.array_equal(classes(score.midi_chroma(everything)[0])[:8], [0] * 8)  # all tracks: C5 over E2
    with pytest.raises(MusicgenError, match="no track 'Sax'"):
        score.midi_chroma(path, track="Sax")
    empty = write_midi(tmp_path / "empty.mid", {"Lead": []})
    with pytest.raises(MusicgenError, match="no notes"):
        score.midi_chroma(empty)


def test_score_chroma_agrees_with_the_audio_path_on_a_rendering_of_the_same_notes(tmp_path):
    """The same notes rendered as harmonic tones, through the audio chroma: the score's chroma
    should be what the audio path hears, except near note boundaries (its window is 0.5 s)."""
    rng = np.random.default_rng(0)
    pitches = rng.choice(np.arange(60, 84), size=24)
    notes = [(i * 0.75, (i + 1) * 0.75, int(p)) for i, p in enumerate(pitches)]
    sr = chroma.SAMPLE_RATE
    t = np.arange(int(notes[-1][1] * sr)) / sr
    wav = np.zeros_like(t)
    for start, stop, p in notes:
        on = (t >= start) & (t < stop)
        f = 440 * 2 ** ((p - 69) / 12)
        wav[on] = sum(0.5 ** h * np.sin(2 * np.pi * f * (h + 1) * t[on]) for h in range(4))
    heard = classes(chroma.chroma(torch.from_numpy(wav).float())[0]).numpy()
    written = classes(score.notes_chroma(notes))
    n = min(len(heard), len(written))
    agreement = float(np.mean(heard[:n] == written[:n]))
    chance = float(np.mean(np.roll(heard[:n], 17) == written[:n]))
    assert agreement >= 0.9 and chance < 0.3, (agreement, chance)  # measured: 0.99


def test_the_score_reaches_the_model_window_by_window(melody_ckpt):
    from musicgen_cli.api import MusicGen
    from musicgen_cli.options import SamplingOptions

    mg = MusicGen.load(str(melody_ckpt), device="cpu", backend="torch")
    c = torch.from_numpy(score.chords_chroma("C D E F G A B", bpm=240, beats_per_chord=2)[0])[None]
    seen = []
    set_conditioning = mg.lm.set_conditioning
    mg.lm.set_conditioning = lambda s, m, prefix=None: (seen.append(prefix.clone()), set_conditioning(s, m, prefix))[1]
    greedy = SamplingOptions(top_k=1)
    a = mg.generate_codes(["x"], 1.0, greedy, score=c)
    length = mg.lm.cfg.chroma_length
    assert torch.equal(seen[0][0], c[0, torch.arange(length) % c.shape[1]])  # window 1 starts at the top
    assert torch.equal(seen[0][1], chroma.null_chroma(1, length)[0])  # the guidance row has no melody
    b = mg.generate_codes(["x"], 1.0, greedy, score=torch.roll(c, 3, dims=-1))
    assert not torch.equal(a, b)


def test_melody_from_chords_and_midi_through_the_cli(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "musicgen_cli", "melody", *map(str, args)], cwd=tmp_path,
                              capture_output=True, text=True, env=OFFLINE, timeout=300)

    r = run("--chords", "Am F C G", "--bpm", "90", "--style", "lo-fi", "--seed", "1")
    assert r.returncode == 0, r.stderr
    assert sf.info(tmp_path / "chords-lo-fi.wav").frames == round(4 * 4 * 60 / 90 * 50) * 640
    write_midi(tmp_path / "song.mid", {"Melody": [(0, 1, 67, 0), (1, 1, 69, 0), (2, 2, 71, 0)]})
    r = run("song.mid", "--style", "orchestral", "--seed", "1")
    assert r.returncode == 0, r.stderr
    assert sf.info(tmp_path / "song-orchestral.wav").frames == 2 * 32000
    write_midi(tmp_path / "empty.mid", {"Melody": []})
    for args, message in [(["--chords", "Am Qm7"], "unknown chord 'Qm7'"),
                          (["empty.mid"], "has no notes"),
                          (["song.mid", "--chords", "Am"], "not both"),
                          (["--chords", "Am", "--bpm", "0"], "--bpm"),
                          (["song.mid", "--track", "Drums"], "no track 'Drums'")]:
        r = run(*args, "-o", "bad.wav")
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 1 and len(lines) == 1 and message in lines[0], (args, r.stderr)
        assert not (tmp_path / "bad.wav").exists()
