"""`musicgen batch` on this machine: bad lines before any work, resume after SIGKILL, a failing item,
the folder as a `datasets` audiofolder. (With Ray: tests/test_batch_ray.py.)"""

import importlib.machinery
import json
import os
import signal
import subprocess
import sys
import time
import types

import numpy as np
import soundfile as sf
from cli_helpers import run_main

from musicgen_cli import files

PROMPTS = ["calm piano", "rock band with brass", "x", "slow blues in e", "calm piano", "aggressive metal riff with drums"]


def musicgen(*args, cwd=None):
    return [sys.executable, "-m", "musicgen_cli", *map(str, args)]


def clips(folder):
    return sorted(p.name for p in folder.iterdir() if p.suffix in (".wav", ".ogg", ".flac", ".mp3"))


def test_bad_lines_are_reported_with_their_numbers_before_any_work(tmp_path, capsys):
    source = tmp_path / "p.jsonl"
    source.write_text("\n".join([
        '{"prompt": "fine", "name": "a"}',
        '{"prompt": "no closing brace"',
        '{"name": "b"}',
        '{"prompt": "x", "durration": 3}',
        '{"prompt": "x", "duration": -1}',
        '{"prompt": "x", "format": "aiff"}',
        '{"prompt": "x", "seed": "seven"}',
        '{"prompt": "again", "name": "A"}',
        '',
        '["prompt"]',
    ]) + "\n")
    code, lines = run_main(["batch", source, "--out", tmp_path / "out", "-m", "/no/such/model"], capsys)
    assert code == 1
    expected = {2: "not JSON", 3: 'no "prompt"', 4: "unknown key 'durration'", 5: "duration must be", 6: "format must be",
                7: '"seed" must be a whole number', 8: "the name 'A' is taken (by line 1", 10: "not a JSON object"}
    for number, words in expected.items():
        assert any(line.startswith(f"{source}:{number}: ") and words in line for line in lines), (number, lines)
    assert lines[-1] == f"musicgen: error: 8 bad lines in {source}; nothing was made"
    assert not (tmp_path / "out").exists()  # before any work: not even the folder


def test_a_job_killed_at_any_moment_loses_only_what_was_in_flight(mono_ckpt, tmp_path):
    """SIGKILL once two items are written; every file left is whole and has its sidecar; the rerun
    makes only the rest (the finished files untouched, the temp files swept) and the folder equals
    an uninterrupted run's, byte for byte; a clip made again alone with `generate --again` too."""
    source = tmp_path / "p.txt"
    source.write_text("# six prompts, one a duplicate\n" + "\n".join(PROMPTS) + "\n")
    args = ["batch", source, "-m", mono_ckpt, "-d", "1", "--batch-size", "1", "--seed", "3"]
    whole = subprocess.run(musicgen(*args, "--out", tmp_path / "whole"), capture_output=True, text=True, timeout=300)
    assert whole.returncode == 0, whole.stderr

    out = tmp_path / "clips"

    def wavs():  # the finished files (pathlib's glob also matches the hidden temp files)
        return [p for p in out.glob("*.wav") if not p.name.startswith(".")]

    proc = subprocess.Popen(musicgen(*args, "--out", out), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while len(wavs()) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    finished = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in wavs()}
    assert 2 <= len(finished) < len(PROMPTS), finished
    for name in finished:  # whole, with a sidecar
        assert sf.info(out / name).frames == 32000 and (out / name).with_suffix(".json").exists()

    rerun = subprocess.run(musicgen(*args, "--out", out), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(PROMPTS)} items: {len(finished)} already in" in rerun.stderr
    assert {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in wavs() if p.name in finished} == finished
    assert not [p.name for p in out.iterdir() if p.name.startswith(files.TEMP_PREFIX)]
    assert clips(out) == clips(tmp_path / "whole") == ["aggressive-metal-riff-with-drums.wav", "calm-piano-2.wav",
                                                      "calm-piano.wav", "rock-band-with-brass.wav",
                                                      "slow-blues-in-e.wav", "x.wav"]
    for name in clips(out):
        assert (out / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name
    assert (out / "metadata.jsonl").read_text() == (tmp_path / "whole" / "metadata.jsonl").read_text()

    again = subprocess.run(musicgen("generate", "--again", out / "slow-blues-in-e.wav", "-o", tmp_path / "again.wav"),
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "again.wav").read_bytes() == (out / "slow-blues-in-e.wav").read_bytes()


def torchcodec_stand_in(monkeypatch):
    """datasets encodes an audio column with torchcodec, whose registry builds are CUDA builds that
    cannot load next to the CPU torch (as torchaudio): its import is stood in for. For a file on
    disk datasets only records the path (decode=False below), so nothing of it runs."""
    for name in ("torchcodec", "torchcodec.encoders", "torchcodec.decoders"):
        module = types.ModuleType(name)
        module.__spec__ = importlib.machinery.ModuleSpec(name, None)
        monkeypatch.setitem(sys.modules, name, module)
    for name, where in (("AudioEncoder", "encoders"), ("AudioDecoder", "decoders"), ("VideoDecoder", "decoders")):
        setattr(sys.modules[f"torchcodec.{where}"], name, type(name, (), {}))


def test_a_failing_item_is_recorded_the_rest_go_on_and_the_folder_is_an_audiofolder(melody_ckpt, tmp_path, monkeypatch):
    t = np.arange(32000 * 2) / 32000
    sf.write(tmp_path / "tune.wav", 0.3 * np.sin(2 * np.pi * 440 * t), 32000)
    source = tmp_path / "p.jsonl"
    lines = [{"prompt": "calm piano", "seed": 5}, {"prompt": "rock band", "melody": "nope.wav", "name": "lost"},
             {"prompt": "folk song", "melody": "tune.wav", "format": "ogg"}, {"prompt": "x", "duration": 0.5}]
    source.write_text("".join(json.dumps(line) + "\n" for line in lines))
    out = tmp_path / "clips"
    args = ["batch", source, "--out", out, "-m", melody_ckpt, "-d", "1"]
    done = subprocess.run(musicgen(*args), capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("musicgen: error: 1 of 4 items failed (the first: line 2, ") and "nope.wav" in last, last
    assert clips(out) == ["calm-piano.wav", "folk-song.ogg", "x.wav"]
    [failure] = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    assert (failure["line"], failure["name"], failure["prompt"]) == (2, "lost", "rock band")
    assert "nope.wav" in failure["error"] and "does not exist" in failure["error"]
    assert json.loads((out / "folk-song.json").read_text())["melody"] == "tune.wav"

    torchcodec_stand_in(monkeypatch)
    import datasets

    dataset = datasets.load_dataset("audiofolder", data_dir=str(out), split="train", cache_dir=str(tmp_path / "cache"))
    dataset = dataset.cast_column("audio", datasets.Audio(decode=False))
    rows = sorted(dataset, key=lambda r: r["name"])
    assert [(os.path.basename(r["audio"]["path"]), r["prompt"], r["duration"]) for r in rows] == [
        ("calm-piano.wav", "calm piano", 1.0), ("folk-song.ogg", "folk song", 1.0), ("x.wav", "x", 0.5)]
    assert rows[0]["seed"] == 5 and {r["model"] for r in rows} == {json.loads((out / "x.json").read_text())["model"]}

    (tmp_path / "nope.wav").write_bytes((tmp_path / "tune.wav").read_bytes())  # the failing item can be made now
    done = subprocess.run(musicgen(*args), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "4 items: 3 already in" in done.stderr and not (out / "failures.jsonl").exists()
    assert clips(out) == ["calm-piano.wav", "folk-song.ogg", "lost.wav", "x.wav"]
