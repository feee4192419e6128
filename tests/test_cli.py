"""The command line, through typer's runner, through `main` (the entry point) and as a real process."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import soundfile as sf
from typer.testing import CliRunner

from musicgen_cli.cli import app
from cli_helpers import run_and_interrupt, run_main

runner = CliRunner()


def test_generate_writes_audio_and_sidecar(mono_ckpt, tmp_path):
    out = tmp_path / "jazz.wav"
    result = runner.invoke(app, ["generate", "lo-fi jazz", "-m", str(mono_ckpt), "-d", "1.5", "-o", str(out), "--seed", "3"])
    assert result.exit_code == 0, result.output
    info = sf.info(out)
    assert (info.samplerate, info.channels, info.frames) == (32000, 1, 75 * 640)
    side = json.loads((tmp_path / "jazz.json").read_text())
    assert side["prompt"] == "lo-fi jazz" and side["seed"] == 3 and side["model"] == str(mono_ckpt)
    assert (side["top_k"], side["top_p"], side["temperature"], side["cfg"]) == (250, 0.0, 1.0, 3.0)
    assert side["duration"] == 1.5 and side["musicgen_version"] and side["wall_time_s"] > 0
    peak = np.abs(sf.read(out)[0]).max()
    assert abs(20 * np.log10(peak) + 1.0) < 0.1  # peak normalisation to -1 dBFS


def test_stereo_checkpoint_writes_stereo(stereo_ckpt, tmp_path):
    out = tmp_path / "s.flac"
    result = runner.invoke(app, ["generate", "rock", "-m", str(stereo_ckpt), "-d", "1", "-o", str(out)])
    assert result.exit_code == 0, result.output
    info = sf.info(out)
    assert (info.samplerate, info.channels, info.frames) == (32000, 2, 50 * 640)


def test_same_seed_same_file_other_seed_other_file(mono_ckpt, tmp_path):
    def make(name, seed):
        args = ["generate", "ambient pads", "-m", str(mono_ckpt), "-d", "2", "-o", str(tmp_path / name), "--seed", str(seed)]
        assert runner.invoke(app, args).exit_code == 0
        return sf.read(tmp_path / name)[0]

    a, b, c = make("a.wav", 11), make("b.wav", 11), make("c.wav", 12)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_several_prompts_one_file_each(mono_ckpt, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("calm piano\n\nfast drums\n")
    out = tmp_path / "batch.ogg"
    args = ["generate", "folk guitar", "--prompts-file", str(prompts), "-m", str(mono_ckpt), "-d", "1", "-o", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    for i, prompt in enumerate(["folk guitar", "calm piano", "fast drums"], start=1):
        assert sf.info(tmp_path / f"batch-{i}.ogg").channels == 1
        assert json.loads((tmp_path / f"batch-{i}.json").read_text())["prompt"] == prompt


def test_default_output_name_comes_from_the_prompt(mono_ckpt, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["generate", "Lo-fi Jazz!", "-m", str(mono_ckpt), "-d", "0.5", "--normalize", "loudness"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "lo-fi-jazz.wav").is_file() and (tmp_path / "lo-fi-jazz.json").is_file()


def test_long_form_runs_windows_and_reports_the_true_total(mono_ckpt, tmp_path):
    from musicgen_cli import MusicGen, SamplingOptions

    mg = MusicGen.load(str(mono_ckpt), device="cpu")
    mg.max_duration = 2.0  # a 100-frame window makes the windowing quick to test
    seen = []
    codes = mg.generate_codes(["x"], 5.0, SamplingOptions(seed=1), stride=1.2, progress=lambda d, t: seen.append((d, t)))
    assert codes.shape == (1, 4, 250)
    # windows: 100 new frames, then 60 per window (40 kept as prompt): 100 + 60 + 60 + 30
    assert seen[-1][0] == seen[-1][1] == (100 + 3) + 3 * 3 + 60 + 60 + 30
    assert all(t == seen[0][1] for _, t in seen)
    # the seed holds across windows; the last window really continues from its prompt
    assert torch.equal(codes, mg.generate_codes(["x"], 5.0, SamplingOptions(seed=1), stride=1.2))
    wav = mg.generate(["x"], 1.0, SamplingOptions(seed=1))
    assert wav.shape == (1, 1, 50 * 640) and wav.dtype == torch.float32


def test_real_process(mono_ckpt, tmp_path):
    out = tmp_path / "p.mp3"
    cmd = [sys.executable, "-m", "musicgen_cli", "generate", "techno", "-m", str(mono_ckpt), "-d", "1", "-o", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert sf.info(out).samplerate == 32000
    assert "wrote" in proc.stderr


def test_interrupt_leaves_no_file(mono_ckpt, tmp_path):
    code, stderr = run_and_interrupt(["generate", "x", "-m", mono_ckpt, "-d", "600", "-o", tmp_path / "long.wav"])
    assert code == 130, stderr
    assert "Traceback" not in stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "extra, message",
    [
        (["-d", "0"], "duration"),
        (["-d", "-3"], "duration"),
        (["-d", "abc"], "duration"),
        (["-d", "1e9"], "too long"),
        (["-d", "nan"], "duration"),
        (["--top-k", "-2"], "top-k"),
        (["--top-p", "2"], "top-p"),
        (["--normalize", "loud"], "normalize"),
        (["-o", "{tmp}/missing/x.wav"], "does not exist"),
        (["-o", "{tmp}/x.aiff"], ".wav"),
        (["-o", "{tmp}"], "folder"),
    ],
)
def test_bad_input_is_one_line(mono_ckpt, tmp_path, capsys, extra, message):
    extra = [a.replace("{tmp}", str(tmp_path)) for a in extra]
    args = ["generate", "x", "-m", mono_ckpt, "-o", tmp_path / "ok.wav", *extra]
    code, lines = run_main(args, capsys)
    assert code != 0
    assert len(lines) == 1 and message in lines[0], lines
    assert not (tmp_path / "ok.wav").exists()


def test_bad_models_are_one_line(tmp_path, capsys, mono_ckpt):
    not_ckpt = tmp_path / "empty"
    not_ckpt.mkdir()
    truncated = tmp_path / "truncated"
    shutil.copytree(mono_ckpt, truncated)
    weights = truncated / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    garbage = tmp_path / "garbage"
    shutil.copytree(mono_ckpt, garbage)
    (garbage / "model.safetensors").write_bytes(b"\x00" * 100)
    cases = [
        (tmp_path / "nope", "does not exist"),
        (not_ckpt, "not a MusicGen checkpoint"),
        (truncated, "truncated or corrupt"),
        (garbage, "truncated or corrupt"),
        ("someone/not-cached-model", "not in the Hugging Face cache, and offline mode"),
    ]
    for model, message in cases:
        code, lines = run_main(["generate", "x", "-m", model, "-o", tmp_path / "o.wav"], capsys)
        assert code == 1 and len(lines) == 1 and message in lines[0], (model, lines)
    assert not (tmp_path / "o.wav").exists()


def test_empty_prompts_file(tmp_path, capsys, mono_ckpt):
    empty = tmp_path / "p.txt"
    empty.write_text("\n  \n")
    code, lines = run_main(["generate", "--prompts-file", empty, "-m", mono_ckpt], capsys)
    assert code == 1 and len(lines) == 1 and "no prompts" in lines[0]


def test_existing_output_kept_unless_force(mono_ckpt, tmp_path, capsys):
    out = tmp_path / "mine.wav"
    out.write_bytes(b"precious")
    code, lines = run_main(["generate", "x", "-m", mono_ckpt, "-d", "0.5", "-o", out], capsys)
    assert code == 1 and "--force" in lines[0]
    assert out.read_bytes() == b"precious"
    code, _ = run_main(["generate", "x", "-m", mono_ckpt, "-d", "0.5", "-o", out, "--force"], capsys)
    assert code in (0, None)
    assert sf.info(out).frames == 25 * 640
