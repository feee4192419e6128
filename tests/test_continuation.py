"""`continue`: the model carries on from the end of the user's audio; the output keeps the user's samples."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from transformers import AutoTokenizer, MusicgenForConditionalGeneration

from musicgen_cli import MusicGen, SamplingOptions, audio
from musicgen_cli.continuation import CROSSFADE_SECONDS, continue_audio, splice
from cli_helpers import run_and_interrupt, run_main
from hf_reference import hf_generate

SR = 32000


def tune(seconds: float, sr: int = SR, channels: int = 1, seed: int = 0) -> np.ndarray:
    """A few seconds of plucked notes, [channels, samples] float32 (channels differ slightly)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    notes = 220.0 * 2 ** (rng.integers(0, 12, size=int(seconds * 4) + 1) / 12)
    f = notes[(t * 4).astype(int)]
    env = np.exp(-6 * ((t * 4) % 1))
    out = [0.4 * env * np.sin(2 * np.pi * f * (1 + 0.002 * c) * t) for c in range(channels)]
    return np.asarray(out, dtype=np.float32)


@pytest.mark.parametrize("backend", ["torch", "cpu"])  # the reference, and the fast path at float32
@pytest.mark.parametrize("cfg", [3.0, 1.0])
def test_greedy_continuation_matches_transformers(ckpt, cfg, backend):
    """Same prompt audio: transformers' generate(input_values=...) and ours give the same greedy codes."""
    hf = MusicgenForConditionalGeneration.from_pretrained(ckpt).eval()
    ours = MusicGen.load(str(ckpt), device="cpu", backend=backend, dtype="float32")
    prompt = torch.from_numpy(tune(20 * 640 / SR, channels=ours.channels))[None]  # 20 frames
    inputs = AutoTokenizer.from_pretrained(ckpt)(["jazz"], return_tensors="pt")
    ref, _ = hf_generate(hf, inputs, input_values=prompt, do_sample=False, guidance_scale=cfg, max_new_tokens=60)

    codes = ours.generate_codes(["jazz"], ref.shape[-1] / 50, SamplingOptions(top_k=1, cfg=cfg), audio=prompt)
    assert codes.shape == ref.shape == (1, ours.lm.cfg.num_codebooks, 20 + 57)
    assert torch.equal(codes, ref)
    assert torch.equal(codes[..., :20], ours.codec.encode(prompt, ours.lm.cfg.num_codebooks))
    assert len(torch.unique(codes[..., 20:])) > 8, "the continuation should vary for the test to mean something"


def test_codec_round_trip_shapes(ckpt):
    mg = MusicGen.load(str(ckpt), device="cpu")
    wav = torch.from_numpy(tune(0.4, channels=mg.channels))[None]  # 20 frames
    codes = mg.codec.encode(wav, mg.lm.cfg.num_codebooks)
    assert codes.shape == (1, mg.lm.cfg.num_codebooks, 20) and codes.max() < mg.lm.cfg.card
    assert mg.codec.decode(codes).shape == wav.shape


def test_splice_keeps_the_original_then_crossfades():
    original = np.full((1, 100), 0.5, dtype=np.float32)
    resynth = np.concatenate([np.full((1, 40), -1.0), np.arange(60)[None] / 100], axis=1).astype(np.float32)
    out = splice(original, resynth, prompt=40, total=130, fade=9)
    assert out.shape == (1, 130)
    assert np.array_equal(out[:, :91], original[:, :91])  # untouched up to the fade
    fade = out[0, 91:100]
    assert np.all(np.diff(fade) < 0) and -1 < fade.min() and fade.max() < 0.5  # from 0.5 towards -1
    assert np.array_equal(out[:, 100:], resynth[:, 40:70])


@pytest.mark.parametrize("in_channels", [1, 2])
def test_output_starts_with_the_input_unchanged(ckpt, in_channels):
    """Mono and stereo inputs, to mono and stereo models: the user's samples come back exactly."""
    mg = MusicGen.load(str(ckpt), device="cpu")
    wav = tune(1.37, channels=in_channels)  # not a whole number of codec frames
    out = continue_audio(mg, wav, duration=2.5, prompt_seconds=1.0, options=SamplingOptions(seed=4))
    channels = max(in_channels, mg.channels)
    assert out.shape == (channels, round(2.5 * SR)) and out.dtype == np.float32
    keep = wav.shape[1] - round(CROSSFADE_SECONDS * SR)
    expected = np.repeat(wav, channels // in_channels, axis=0)
    assert np.array_equal(out[:, :keep], expected[:, :keep])
    assert np.abs(out[:, wav.shape[1] :]).max() > 0  # new audio follows


def test_the_model_hears_the_end_of_the_input(mono_ckpt, monkeypatch):
    """The prompt is the input's last --prompt-seconds (in whole codec frames), not its beginning."""
    mg = MusicGen.load(str(mono_ckpt), device="cpu")
    wav = tune(2.0)
    heard, generate_codes = [], mg.generate_codes

    def record(*args, audio, **kw):
        heard.append(audio)
        return generate_codes(*args, audio=audio, **kw)

    monkeypatch.setattr(mg, "generate_codes", record)
    continue_audio(mg, wav, duration=2.5, prompt_seconds=0.5, options=SamplingOptions(top_k=1))
    assert torch.equal(heard[0][0], torch.from_numpy(wav[:, -25 * 640 :]))  # 0.5 s = 25 frames of 640


def test_continuation_longer_than_the_window(mono_ckpt):
    mg = MusicGen.load(str(mono_ckpt), device="cpu")
    mg.max_duration = 2.0  # a 100-frame window: windowing quick to test
    wav = tune(1.5)
    seen = []
    out = continue_audio(mg, wav, duration=4.3, prompt_seconds=1.0, options=SamplingOptions(seed=2),
                         stride=1.0, progress=lambda d, t: seen.append((d, t)))
    assert out.shape == (1, round(4.3 * SR))
    assert seen[-1][0] == seen[-1][1]
    # 1.0 s prompt (50 frames) + 140 new frames: windows of 100 (50 new), then +50, +40 (stride 50)
    assert seen[-1][1] == (50 + 3) + (50 + 3) + (40 + 3)


def test_no_description_needs_no_guidance(mono_ckpt):
    """Without --prompt both guidance rows would be identical, so one row is run: same tokens as cfg 1."""
    mg = MusicGen.load(str(mono_ckpt), device="cpu")
    prompt = torch.from_numpy(tune(0.4))[None]
    a = mg.generate_codes([None], 1.0, SamplingOptions(top_k=1, cfg=3.0), audio=prompt)
    b = mg.generate_codes([None], 1.0, SamplingOptions(top_k=1, cfg=1.0), audio=prompt)
    c = mg.generate_codes(["jazz"], 1.0, SamplingOptions(top_k=1, cfg=3.0), audio=prompt)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_cli_resamples_a_44k_stereo_file(mono_ckpt, tmp_path, capsys):
    src = tmp_path / "in.wav"
    sf.write(src, tune(1.2, sr=44100, channels=2).T, 44100, subtype="PCM_16")
    out = tmp_path / "longer.wav"
    code, lines = run_main(["continue", src, "-m", mono_ckpt, "-d", "2", "-o", out, "--seed", "1"], capsys)
    assert code == 0, lines
    got, sr = sf.read(out, dtype="float32", always_2d=True)
    assert sr == SR and got.shape == (2 * SR, 2)  # the input's two channels are kept
    original = audio.resample(sf.read(src, dtype="float32", always_2d=True)[0].T, 44100, SR)
    keep = original.shape[1] - round(CROSSFADE_SECONDS * SR)
    # the user's samples after resampling, to 16-bit precision (the output is a 16-bit WAV)
    assert np.abs(got[:keep].T - original[:, :keep]).max() <= 1 / 32768 + 1e-7
    side = json.loads((tmp_path / "longer.json").read_text())
    assert side["input"] == str(src) and side["prompt"] is None and side["normalize"] == "none"
    assert side["duration"] == 2.0 and side["channels"] == 2


def test_cli_same_rate_input_is_bit_exact_and_only_new(stereo_ckpt, tmp_path, capsys):
    src = tmp_path / "mono.flac"
    sf.write(src, tune(1.0).T, SR, subtype="PCM_16")
    out, new = tmp_path / "full.wav", tmp_path / "new.wav"
    args = ["continue", src, "-m", stereo_ckpt, "-d", "1.8", "--seed", "5", "--prompt", "add a saxophone solo"]
    assert run_main([*args, "-o", out], capsys)[0] == 0
    assert run_main([*args, "-o", new, "--only-new"], capsys)[0] == 0
    full, _ = sf.read(out, dtype="int16", always_2d=True)
    part, _ = sf.read(new, dtype="int16", always_2d=True)
    original, _ = sf.read(src, dtype="int16", always_2d=True)
    keep = SR - round(CROSSFADE_SECONDS * SR)
    assert full.shape == (round(1.8 * SR), 2)  # the stereo model's two channels
    assert np.array_equal(full[:keep], np.repeat(original[:keep], 2, axis=1))
    assert np.array_equal(part, full[SR:])


def test_default_duration_and_name(mono_ckpt, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sf.write(tmp_path / "My Song.wav", tune(0.5).T, SR)
    code, lines = run_main(["continue", "My Song.wav", "-m", mono_ckpt, "--top-k", "1"], capsys)
    assert code == 0, lines
    assert sf.info(tmp_path / "my-song-continued.wav").frames == round(10.5 * SR)


def bad_files(tmp_path):
    good = tune(1.0)
    files = {}
    files["text"] = tmp_path / "notes.wav"
    files["text"].write_text("this is not audio\n" * 20)
    files["image"] = tmp_path / "picture.mp3"
    files["image"].write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)
    files["truncated"] = tmp_path / "cut.wav"
    sf.write(files["truncated"], good.T, SR)
    files["truncated"].write_bytes(files["truncated"].read_bytes()[:30])
    files["empty"] = tmp_path / "empty.wav"
    files["empty"].write_bytes(b"")
    files["silent"] = tmp_path / "silent.wav"
    sf.write(files["silent"], np.zeros(SR), SR)
    files["nan"] = tmp_path / "nan.wav"
    sf.write(files["nan"], np.full(SR, np.nan, dtype=np.float32), SR, subtype="FLOAT")
    files["folder"] = tmp_path / "a-folder.wav"
    files["folder"].mkdir()
    files["missing"] = tmp_path / "missing.wav"
    return files


@pytest.mark.parametrize("command", ["continue", "melody"])
def test_bad_input_files_are_one_line(mono_ckpt, tmp_path, capsys, command):
    messages = {
        "text": "could not read", "image": "could not read", "truncated": "could not read", "empty": "empty",
        "silent": "silent", "nan": "NaN", "folder": "folder", "missing": "does not exist",
    }
    for kind, path in bad_files(tmp_path).items():
        out = tmp_path / f"out-{kind}.wav"
        code, lines = run_main([command, path, "-m", mono_ckpt, "-o", out], capsys)
        assert code == 1 and len(lines) == 1 and messages[kind] in lines[0], (kind, lines)
        assert lines[0].startswith("musicgen: error: ")
        assert not out.exists()
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(("out-", "."))]


def test_bad_continue_requests_are_one_line(mono_ckpt, tmp_path, capsys):
    src = tmp_path / "in.wav"
    sf.write(src, tune(3.0).T, SR)
    cases = [
        (["-d", "2"], "already lasts 3.00 s"),
        (["-d", "3"], "already lasts"),
        (["--prompt-seconds", "0"], "--prompt-seconds"),
        (["--prompt-seconds", "31"], "--prompt-seconds"),
        (["-o", src, "--force"], "is the input file"),
        (["--prompt", " "], "--prompt is empty"),
    ]
    for extra, message in cases:
        code, lines = run_main(["continue", src, "-m", mono_ckpt, *extra], capsys)
        assert code == 1 and len(lines) == 1 and message in lines[0], (extra, lines)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav"]


@pytest.mark.parametrize("suffix", [".ogg", ".mp3"])
def test_compressed_inputs(mono_ckpt, tmp_path, capsys, suffix):
    src = tmp_path / f"in{suffix}"
    sf.write(src, tune(1.0, sr=44100).T, 44100)
    out = tmp_path / "out.wav"
    code, lines = run_main(["continue", src, "-m", mono_ckpt, "-d", "1.5", "-o", out], capsys)
    assert code == 0, lines
    assert sf.info(out).frames == 48000


def test_interrupted_continue_leaves_no_file(mono_ckpt, tmp_path):
    src = tmp_path / "in.wav"
    sf.write(src, tune(1.0).T, SR)
    code, stderr = run_and_interrupt(["continue", src, "-m", mono_ckpt, "-d", "600", "-o", tmp_path / "long.wav"])
    assert code == 130, stderr
    assert "Traceback" not in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav"]
