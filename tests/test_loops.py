"""Bars and loops: durations in whole bars, seamless loops, the WAV loop chunk, through the CLI."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from musicgen_cli import loops
from musicgen_cli.errors import MusicgenError

OFFLINE = {**os.environ, "HF_HUB_OFFLINE": "1"}


def run(*args, cwd):
    return subprocess.run([sys.executable, "-m", "musicgen_cli", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, env=OFFLINE, timeout=300)


def test_bar_lengths_and_bad_bars():
    assert loops.bars_duration(4, 90) == pytest.approx(4 * 4 * 60 / 90)
    assert loops.bar_seconds(120, "6/8") == pytest.approx(1.5)  # six eighths at 120 quarter notes a minute
    assert loops.bar_seconds(60, "3/4") == pytest.approx(3.0)
    for call, message in [(lambda: loops.bars_duration(0, 90), "--bars"), (lambda: loops.bar_seconds(0), "--bpm"),
                          (lambda: loops.parse_meter("5/3"), "--meter"),
                          (lambda: loops.length(None, 4, None, "4/4", 10), "needs --bpm"),
                          (lambda: loops.length(5.0, 4, 90, "4/4", 10), "not both")]:
        with pytest.raises(MusicgenError, match=message):
            call()


def seam(wav: np.ndarray, frame: int = 1024):
    """(sample jump at the wrap, its rank among neighbouring samples; spectral change at the wrap,
    its rank among neighbouring frames): ranks are the share of inside values below the wrap's."""
    x = wav if wav.ndim == 1 else wav.mean(axis=1)
    inside = np.abs(np.diff(x))
    jump = abs(x[0] - x[-1])
    spectra = log_spectrum(x[: len(x) // frame * frame].reshape(-1, frame))
    changes = np.linalg.norm(np.diff(spectra, axis=0), axis=1)
    wrap = spectral_change(x[-frame:], x[:frame])
    return jump, float(np.mean(inside < jump)), wrap, float(np.mean(changes < wrap))


def log_spectrum(x: np.ndarray) -> np.ndarray:
    """Log magnitude with a floor 60 dB under the peak: the change is heard, not the noise floor's."""
    mag = np.abs(np.fft.rfft(x * np.hanning(x.shape[-1]), axis=-1))
    return np.log(mag + 1e-3 * mag.max(axis=-1, keepdims=True) + 1e-9)


def spectral_change(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(log_spectrum(b) - log_spectrum(a)))


def test_close_loop_makes_the_end_lead_into_the_start():
    """Played in a loop, the wrap sounds like the piece going on past its end (what the overhang
    is), not like a cut back to its opening."""
    sr, frame = 32000, 1024
    t = np.arange(3 * sr) / sr
    notes = 220 * 2 ** (np.array([0, 3, 7, 10, 12, 7, 5, 2, 0, 4, 9, 11])[(t * 4).astype(int) % 12] / 12)
    piece = (np.sin(2 * np.pi * np.cumsum(notes) / sr) * (0.5 + 0.3 * np.sin(2 * np.pi * 0.3 * t)))[None].astype(np.float32)
    length, fade = 2 * sr + 123, 8000
    looped = loops.close_loop(piece, length, fade)
    assert looped.shape == (1, length)
    np.testing.assert_array_equal(looped[:, fade:], piece[:, fade:length])  # untouched past the fade
    end = looped[0, -frame:]
    going_on = spectral_change(end, piece[0, length : length + frame])  # the music continuing
    wrap = spectral_change(end, looped[0, :frame])
    cut = spectral_change(end, piece[0, :frame])  # the same piece cut, not closed
    assert abs(wrap - going_on) < 0.1 * going_on and cut > 1.5 * wrap, (wrap, going_on, cut)  # 6.2, 5.7, 11.1
    assert abs(looped[0, 0] - looped[0, -1]) < 2 * np.median(np.abs(np.diff(looped[0])))


def test_a_bar_exact_loop_through_the_cli(tmp_path):
    r = run("generate", "minimal techno", "--bpm", "120", "--bars", "4", "--loop", "--seed", "3", "-o", "loop.wav",
            cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    wav, sr = sf.read(tmp_path / "loop.wav")
    assert len(wav) == 4 * 2 * sr  # 4 bars of 4/4 at 120 bpm: 8 s, to the sample
    assert loops.read_smpl_loops(tmp_path / "loop.wav") == [(0, len(wav) - 1)]
    side = json.loads((tmp_path / "loop.json").read_text())
    assert (side["bpm"], side["bars"], side["meter"], side["loop"]) == (120, 4, "4/4", True)
    assert (side["loop_start"], side["loop_end"], side["duration"]) == (0, len(wav) - 1, 8.0)
    jump, jump_rank, change, change_rank = seam(wav)
    # the wrap is a point like any inside the piece, not an outlier as a cut is. Bundled model (second
    # version), seeds 3-7: looped, the wrap's change ranks 0.26-0.82 and its jump 0.003-0.85; the same
    # pieces cut without the crossfade rank 0.956-1.0 in change (seed 3: looped 0.79 / 0.815, cut 0.66 / 0.996)
    assert jump_rank <= 0.95 and change_rank <= 0.9, (jump, jump_rank, change, change_rank)

    r = run("generate", "jazz", "--bpm", "90", "--bars", "2", "--meter", "3/4", "-o", "waltz.flac", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert sf.info(tmp_path / "waltz.flac").frames == 2 * 3 * 32000 * 60 // 90  # no loop: just whole bars

    r = run("continue", "loop.wav", "--bpm", "120", "--bars", "2", "-o", "more.wav", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert sf.info(tmp_path / "more.wav").frames == len(wav) + 2 * 2 * sr  # two more bars

    for args, message in [(["generate", "x", "--bars", "0", "--bpm", "90"], "--bars"),
                          (["generate", "x", "--bars", "4"], "needs --bpm"),
                          (["generate", "x", "--bars", "4", "--bpm", "90", "-d", "3"], "not both"),
                          (["generate", "x", "--bars", "4", "--bpm", "90", "--meter", "4/5"], "--meter")]:
        r = run(*args, "-o", "bad.wav", cwd=tmp_path)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 1 and len(lines) == 1 and message in lines[0], (args, r.stderr)
        assert not (tmp_path / "bad.wav").exists()
