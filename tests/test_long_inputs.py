"""Item 8 of issue 16: `continue --only-new` reads only the end of its input (a seek) and resamples
only that, so its memory does not grow with the input's length (a 2-hour input had needed 6.6 GB);
what it writes is what reading and resampling the whole input gives."""

import math
import os
import struct
import subprocess
import sys
import tempfile
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
from cli_helpers import run_main
from test_continuation import tune

from musicgen_cli import audio
from musicgen_cli.continuation import at_model_rate
from musicgen_cli.inputs import HEARD_MARGIN

RATE = 44100  # not the model's: the end is resampled on its own and must land on the whole input's grid
GIB = 1 << 30


def sparse_wav(path, seconds: float, end: np.ndarray):
    """A 16-bit WAV lasting `seconds`, silent but for its last samples, `end` [C, n]: the silence is
    a hole in a sparse file, so that hours take no time and no disk."""
    channels = end.shape[0]
    data = round(seconds * RATE) * channels * 2
    pcm = np.round(np.clip(end.T, -1, 1) * 32767).astype("<i2").tobytes()
    fmt = struct.pack("<HHIIHH", 1, channels, RATE, RATE * channels * 2, channels * 2, 16)
    with open(path, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", 36 + data) + b"WAVEfmt " + struct.pack("<I", 16) + fmt
                + b"data" + struct.pack("<I", data))
        f.truncate(44 + data - len(pcm))
        f.seek(0, os.SEEK_END)
        f.write(pcm)
    return path


# Runs the command line and, as the process exits, records its own peak resident memory (VmHWM). Not
# wait4's ru_maxrss: that is the largest of the process and its waited-for children, and a compiler
# building the CPU kernels (1.1 GB) then hides the command's own figure.
MEASURED = """
import atexit, runpy, sys
def record(path=sys.argv.pop(1)):
    peak = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
    open(path, "w").write(peak.split()[1])
atexit.register(record)
sys.argv[0] = "musicgen"
runpy.run_module("musicgen_cli", run_name="__main__")
"""


def run_measured(args) -> tuple[int, int, str]:
    """Run `musicgen ARGS` in its own process: (exit code, its peak resident memory in bytes, stderr)."""
    with tempfile.TemporaryDirectory() as tmp:
        peak_file = os.path.join(tmp, "peak")
        proc = subprocess.run([sys.executable, "-c", MEASURED, peak_file, *map(str, args)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        peak = int(open(peak_file).read()) * 1024 if os.path.exists(peak_file) else 0
    return proc.returncode, peak, proc.stderr


def test_continue_only_new_on_a_two_hour_input_stays_small(mono_ckpt, tmp_path):
    """`continue 2h.wav --prompt-seconds 2 --only-new` (44.1 kHz stereo: 2.5 GB as float32) peaks
    under 1 GB, within 64 MB of the same command on a 5-second file with the same end, and writes
    the same audio."""
    end = tune(5.0, sr=RATE, channels=2)
    long, short = sparse_wav(tmp_path / "2h.wav", 7200, end), sparse_wav(tmp_path / "5s.wav", 5, end)
    assert sf.info(long).frames == 7200 * RATE
    args = ["-m", mono_ckpt, "--prompt-seconds", "2", "--only-new", "--seed", "3"]
    code, peak, stderr = run_measured(["continue", long, *args, "-o", tmp_path / "long-new.wav"])
    assert code == 0, stderr
    code, small, stderr = run_measured(["continue", short, *args, "-o", tmp_path / "short-new.wav"])
    assert code == 0, stderr
    assert peak < GIB and peak - small < 64 << 20, (peak, small)
    new, sr = sf.read(tmp_path / "long-new.wav", dtype="int16", always_2d=True)
    assert sr == 32000 and new.shape == (10 * 32000, 2) and np.abs(new).max() > 0
    assert np.array_equal(new, sf.read(tmp_path / "short-new.wav", dtype="int16", always_2d=True)[0])
    assert sf.info(long).frames == 7200 * RATE  # the input is untouched


def test_only_new_reads_the_end_and_writes_what_the_whole_input_gives(mono_ckpt, tmp_path, capsys, monkeypatch):
    """At 44.1 kHz, a length that is not on the 32 kHz grid: the new part written by `--only-new`
    (which reads and resamples only the end) equals the new part of the whole output."""
    src = tmp_path / "in.wav"
    sf.write(src, tune(6.0037, sr=RATE, channels=2).T, RATE, subtype="PCM_16")
    args = ["continue", src, "-m", mono_ckpt, "-d", "8", "--prompt-seconds", "2", "--seed", "5"]
    assert run_main([*args, "-o", tmp_path / "full.wav"], capsys)[0] in (0, None)
    read, asked = sf.read, []

    def recording_read(*a, **kw):
        asked.append((kw.get("start", 0), kw.get("frames", -1)))
        return read(*a, **kw)

    monkeypatch.setattr(sf, "read", recording_read)
    assert run_main([*args, "-o", tmp_path / "new.wav", "--only-new"], capsys)[0] in (0, None)
    frames = sf.info(src).frames
    heard = math.ceil((2 + HEARD_MARGIN) * RATE)
    assert asked == [(frames - heard, heard)]
    full = sf.read(tmp_path / "full.wav", dtype="int16")[0]
    new = sf.read(tmp_path / "new.wav", dtype="int16")[0]
    before = audio.resample(read(src, dtype="float32", always_2d=True)[0].T, RATE, 32000).shape[1]
    assert len(new) == len(full) - before == 8 * 32000 - before
    assert np.array_equal(new, full[before:])


@pytest.mark.parametrize("rate", [44100, 48000, 22050, 32000, 11111])
def test_the_end_resampled_alone_is_the_end_of_the_whole(rate):
    """at_model_rate: the input's end, resampled on its own, lies on the grid of the whole input's
    resampling: the same samples (past the resampler's settling) and the right count before them."""
    whole = tune(4.0, sr=rate, channels=2)[:, : round(3.9371 * rate)]
    reference = audio.resample(whole, rate, 32000)
    start = whole.shape[1] - round(1.7 * rate)
    end, before = at_model_rate(SimpleNamespace(sample_rate=32000), whole[:, start:], rate, start)
    assert before + end.shape[1] == reference.shape[1]
    settle = 3200  # 0.1 s
    assert np.abs(end[:, settle:] - reference[:, before + settle :]).max() < 1e-4
