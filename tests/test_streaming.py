"""Hearing it while it is made: chunked decoding, the streamable cleaner, frames handed over as they
are completed, and `-o -` / `--play` through a real process (stdout parsed as WAV, Ctrl-C, a fake
output device)."""

import io
import json
import math
import os
import pty
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from cli_helpers import run_main
from test_windows import short_window

from musicgen_cli import MusicGen, SamplingOptions, audio, checkpoints
from musicgen_cli.codec import Codec
from musicgen_cli.codec_v2 import BundledCodec, CodecConfig
from musicgen_cli.encodec import EnCodec, EnCodecConfig

FAKE_SOUNDDEVICE = Path(__file__).parent / "fake_sounddevice"


# ------------------------------------------------------------------------------------ chunked decoding

def chunked(codec: Codec, codes: torch.Tensor, sizes: list[int]) -> tuple[torch.Tensor, list[int]]:
    """Decode `codes` pushed in chunks of `sizes` (cycled) -> (audio, the sample index of each border)."""
    stream, parts, at, i = codec.stream(), [], 0, 0
    while at < codes.shape[-1]:
        n = sizes[i % len(sizes)]
        parts.append(stream.push(codes[..., at : at + n]))
        at, i = at + n, i + 1
    parts.append(stream.end())
    parts = [p for p in parts if p is not None]
    borders = np.cumsum([p.shape[-1] for p in parts])[:-1].tolist()
    return torch.cat(parts, dim=-1), borders


def db(error: torch.Tensor, reference: torch.Tensor) -> float:
    return 10 * math.log10(float(error.pow(2).sum() / reference.pow(2).sum()))


def assert_same_as_one_shot(codec: Codec, codes: torch.Tensor, sizes: list[int]) -> None:
    full = codec.decode(codes)
    out, borders = chunked(codec, codes, sizes)
    assert out.shape == full.shape
    assert db(out - full, full) < -60, f"chunks {sizes}: {db(out - full, full):.1f} dB"
    peak, hop = float(full.abs().max()), codec.hop_length
    for b in borders:  # no click at a chunk border: nothing there that the one-shot decode lacks
        assert float((out - full)[..., max(0, b - hop) : b + hop].abs().max()) < 1e-3 * peak, b


def random_codes(k: int, frames: int, card: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, card, (1, k, frames), generator=torch.Generator().manual_seed(seed))


def test_the_bundled_codec_decodes_in_chunks_as_in_one_go():
    """Our EnCodec with the bundled model's trained weights: chunks of 1 frame, 10, and uneven ones."""
    codec = Codec(checkpoints.load("bundled").codec)
    codes = random_codes(4, 300, 1024)
    for sizes in ([1], [10], [7, 3, 25, 1, 60]):
        assert_same_as_one_shot(codec, codes, sizes)


def test_musicgens_codec_decodes_in_chunks_mono_and_stereo():
    """The published models' EnCodec architecture (random weights: 64 filters, two LSTM layers), and
    a stereo model's codec, which decodes each channel's codebooks separately."""
    torch.manual_seed(0)
    model = EnCodec(EnCodecConfig()).eval()
    assert_same_as_one_shot(Codec(model), random_codes(4, 60, 2048), [10, 3])
    assert_same_as_one_shot(Codec(model, channels=2), random_codes(8, 40, 2048), [12, 1])


def far_reaching_v2() -> BundledCodec:
    """Codec v2 with every convolution leaning on its outermost taps, so that a frame's audio depends
    strongly on frames as far away as the receptive field allows (a trained or random decoder's
    influence fades with distance, and a context one frame short would go unnoticed)."""
    torch.manual_seed(0)
    model = BundledCodec(CodecConfig(enc_ffts=[1024, 256], dim=32, enc_blocks=1, dec_blocks=3, latent_dim=8,
                                     codebook_size=16)).eval()
    with torch.no_grad():
        for book in model.quantizer.books:
            book.embed.normal_()
        for block in model.decoder.blocks:
            block.gamma.fill_(30.0)  # the block, not the residual path, carries the signal
            block.dw.weight.zero_()
            block.dw.weight[0::2, 0, 0] = 3.0  # even channels look 3 frames back, odd ones 3 ahead
            block.dw.weight[1::2, 0, -1] = 3.0
    return model


def test_codec_v2_decodes_in_chunks_as_in_one_go():
    codec = Codec(far_reaching_v2())
    codes = random_codes(4, 200, 16)
    for sizes in ([1], [10], [4, 31]):
        assert_same_as_one_shot(codec, codes, sizes)


def test_codec_v2_keeps_its_phases_over_a_long_piece():
    """The integrated phase runs in float64: after 2 minutes (6000 frames) a chunked decode still equals
    the one-shot one (a float32 running sum of ~1e7 radians is a radian off)."""
    codec = Codec(far_reaching_v2())
    codes = random_codes(4, 6000, 16, seed=1)
    with torch.no_grad():
        full = codec.decode(codes)
        out, _ = chunked(codec, codes, [500])
    assert db(out - full, full) < -60


# ------------------------------------------------------------------------------------ the cleaner

def cleaned_in_chunks(wav: np.ndarray, sizes: list[int]) -> np.ndarray:
    cleaner, parts, at, i = audio.Cleaner(32000), [], 0, 0
    while at < wav.shape[-1]:
        parts.append(cleaner.push(wav[..., at : at + sizes[i % len(sizes)]]))
        at, i = at + sizes[i % len(sizes)], i + 1
    parts.append(cleaner.end())
    return np.concatenate([p for p in parts if p is not None], axis=-1)


def test_the_cleaner_in_chunks_equals_remove_dc_of_the_whole():
    rng = np.random.default_rng(0)
    wav = (0.1 * rng.standard_normal((2, 64000)) + 0.2).astype(np.float32)
    whole = audio.remove_dc(wav, 32000)
    for sizes in ([1, 999], [640], [6400, 17, 30000]):
        np.testing.assert_allclose(cleaned_in_chunks(wav, sizes), whole, atol=1e-6)


def test_the_cleaner_removes_offset_and_drift_keeps_music_and_does_not_click():
    t = np.arange(5 * 32000) / 32000
    tone = 0.3 * np.sin(2 * np.pi * 440 * t)
    y = audio.remove_dc((tone + 0.25 + 0.1 * np.sin(2 * np.pi * 3 * t)).astype(np.float32), 32000)
    middle = slice(32000, 4 * 32000)
    assert abs(y[middle].mean()) < 1e-3  # the offset is gone
    basis = np.stack([np.sin(2 * np.pi * 440 * t[middle]), np.cos(2 * np.pi * 440 * t[middle])], axis=1)
    fit, *_ = np.linalg.lstsq(basis, y[middle], rcond=None)
    assert abs(np.hypot(*fit) - 0.3) < 0.003  # the tone keeps its level (the filter shifts its phase a little)
    assert np.sqrt(np.mean((y[middle] - basis @ fit) ** 2)) < 3e-3  # and the 3 Hz drift is gone
    assert abs(y[0]) < 1e-3 and abs(y[-1]) < 1e-3  # faded in and out
    # an offset already there at the first sample does not ring: the filter starts as if it had stood there
    assert np.abs(audio.remove_dc(np.full(32000, 0.3, np.float32), 32000)).max() < 1e-6


# ------------------------------------------------------------------------------------ frames as they come

def test_each_frame_is_handed_over_the_step_its_last_codebook_is_drawn(mono_ckpt):
    mg = MusicGen.load(str(mono_ckpt), device="cpu", backend="torch")
    steps, got = [0], []
    codes = mg.generate_codes(["a", "bb"], 1.0, SamplingOptions(seed=3), progress=lambda done, total: steps.append(done),
                              on_frames=lambda first, new: got.append((steps[-1], first, new.clone())))
    assert [g[1] for g in got] == list(range(50))
    assert all(step == first + 4 for step, first, _ in got)  # frame t: column t + 4, the first sampled is column 1
    assert torch.equal(torch.cat([g[2] for g in got], dim=2), codes)


@pytest.mark.parametrize("backend", ["torch", "cpu"])
def test_frames_over_windows_and_after_a_prompt_come_once_in_order(mono_ckpt, tmp_path_factory, backend):
    mg = MusicGen.load(str(short_window(mono_ckpt, tmp_path_factory)), device="cpu", backend=backend, dtype="float32")
    got = []
    prompt = torch.randn(1, 1, 20 * 640) * 0.1
    codes = mg.generate_codes(["a"], 4.0, SamplingOptions(seed=1), stride=1.0, audio=prompt,
                              on_frames=lambda first, new: got.append((first, new.clone())))
    assert got[0][0] == 0 and got[0][1].shape[2] == 20  # the prompt's frames, at the first step
    assert [g[0] for g in got] == np.cumsum([0] + [g[1].shape[2] for g in got[:-1]]).tolist()
    assert torch.equal(torch.cat([g[1] for g in got], dim=2), codes)


class Enough(Exception):
    pass


def test_an_endless_run_goes_on_window_after_window_as_a_long_piece_does(mono_ckpt, tmp_path_factory):
    """Windows of 100 frames, each new one keeping 50: an endless run's first 200 frames are those of a
    4 s piece (100 + 50 + 50, every window whole)."""
    mg = MusicGen.load(str(short_window(mono_ckpt, tmp_path_factory)), device="cpu", backend="cpu", dtype="float32")
    opts, got = SamplingOptions(seed=2), []

    def take(first, new):
        got.append(new.clone())
        if first >= 260:
            raise Enough

    with pytest.raises(Enough):
        mg.generate_codes(["a"], math.inf, opts, stride=1.0, on_frames=take)
    endless = torch.cat(got, dim=2)
    assert torch.equal(endless[:, :, :200], mg.generate_codes(["a"], 4.0, opts, stride=1.0))


# ------------------------------------------------------------------------------------ through a real process

def musicgen(*args, env=None, **kw):
    return subprocess.run([sys.executable, "-m", "musicgen_cli", *map(str, args)], capture_output=True,
                          timeout=300, env={**os.environ, **(env or {})}, **kw)


def parse_wav(data: bytes) -> tuple[dict, np.ndarray]:
    """Our stream's header, field by field, and its samples [n, channels] (int16)."""
    riff, size, wave, fmt, fmt_size, tag, channels, rate, byte_rate, align, bits, data_tag, data_size = \
        struct.unpack("<4sI4s4sIHHIIHH4sI", data[:44])
    assert (riff, wave, fmt, fmt_size, tag, bits, data_tag) == (b"RIFF", b"WAVE", b"fmt ", 16, 1, 16, b"data")
    assert byte_rate == rate * channels * 2 and align == channels * 2
    body = data[44:]
    assert len(body) % align == 0  # whole sample frames only
    header = {"riff_size": size, "data_size": data_size, "channels": channels, "rate": rate, "bytes": len(body)}
    return header, np.frombuffer(body, "<i2").reshape(-1, channels)


def assert_same_samples(streamed: np.ndarray, written: np.ndarray) -> None:
    """Equal up to float rounding in the codec: at most 1 in 16 bits, in very few samples."""
    assert streamed.shape == written.shape
    diff = np.abs(streamed.astype(int) - written.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3, (diff.max(), (diff > 0).mean())
    assert np.abs(written).max() > 100  # not silence


@pytest.mark.parametrize("which", ["mono", "stereo"])
def test_a_stream_on_stdout_is_a_wav_with_the_files_samples(which, mono_ckpt, stereo_ckpt, tmp_path):
    ckpt = mono_ckpt if which == "mono" else stereo_ckpt
    args = ["generate", "jazz", "-m", ckpt, "-d", "1.5", "--seed", "7"]
    streamed = musicgen(*args, "-o", "-")
    assert streamed.returncode == 0, streamed.stderr.decode()
    header, samples = parse_wav(streamed.stdout)
    assert header["data_size"] == header["bytes"] == 48000 * header["channels"] * 2  # exact sizes: the length is known
    assert header["riff_size"] == 36 + header["data_size"] and header["rate"] == 32000
    assert header["channels"] == (1 if which == "mono" else 2)
    assert b"RIFF" not in streamed.stderr and "streamed 1.5 s" in streamed.stderr.decode()
    written = musicgen(*args, "--normalize", "none", "-o", tmp_path / "a.wav")
    assert written.returncode == 0, written.stderr.decode()
    assert_same_samples(samples, sf.read(tmp_path / "a.wav", dtype="int16", always_2d=True)[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "a.wav"]  # the stream left no file


def test_continue_and_melody_stream_the_files_samples(mono_ckpt, melody_ckpt, tmp_path):
    t = np.arange(2 * 32000) / 32000
    sf.write(tmp_path / "in.wav", (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), 32000)
    for args in (["continue", tmp_path / "in.wav", "-m", mono_ckpt, "-d", "3.3", "--seed", "4"],
                 ["continue", tmp_path / "in.wav", "-m", mono_ckpt, "-d", "3.3", "--seed", "4", "--only-new"],
                 ["melody", tmp_path / "in.wav", "-m", melody_ckpt, "-d", "1.7", "--seed", "5", "--normalize", "none"]):
        streamed = musicgen(*args, "-o", "-")
        assert streamed.returncode == 0, streamed.stderr.decode()
        written = musicgen(*args, "-o", tmp_path / "out.wav", "--force")
        assert written.returncode == 0, written.stderr.decode()
        assert_same_samples(parse_wav(streamed.stdout)[1], sf.read(tmp_path / "out.wav", dtype="int16", always_2d=True)[0])


@pytest.fixture
def reaped():
    """reaped(proc): a process without end, killed when the test ends, whatever happened in it."""
    procs = []
    yield procs.append
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_ctrl_c_ends_an_endless_stream_with_valid_audio(mono_ckpt, reaped):
    proc = subprocess.Popen([sys.executable, "-m", "musicgen_cli", "generate", "x", "-m", str(mono_ckpt), "-d", "inf",
                             "--seed", "1", "-o", "-"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    reaped(proc)
    out = bytearray()
    reader = threading.Thread(target=lambda: [out.extend(b) for b in iter(lambda: proc.stdout.read(65536), b"")])
    reader.start()
    deadline = time.monotonic() + 120
    while len(out) < 44 + 3 * 64000 and time.monotonic() < deadline:  # 3 s of audio out
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=120)  # not communicate(): it would read standard output too, racing the reader
    reader.join()
    stderr = proc.stderr.read().decode()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    header, samples = parse_wav(bytes(out))
    assert header["riff_size"] == header["data_size"] == 0xFFFFFFFF  # length unknown when it started
    assert len(samples) >= 3 * 32000
    assert f"the stream ended cleanly after {len(samples) / 32000:.1f} s of audio" in stderr
    fade = np.arange(16, 0, -1)[:, None] / 161  # the last 16 of the 5 ms fade-out's 160 gains
    assert (np.abs(samples[-16:]) <= 2 * np.abs(samples).max() * fade + 1).all()  # faded out: no click at the end
    # what a reader sees: libsndfile reads the stream as a WAV of exactly what arrived
    data, sr = sf.read(io.BytesIO(bytes(out)), dtype="int16", always_2d=True)
    assert sr == 32000 and np.array_equal(data, samples)


def test_ffmpeg_and_aplay_take_the_stream_of_known_and_of_unknown_length(mono_ckpt):
    """What users pipe it into: ffmpeg decodes both headers to our samples, aplay plays both (to ALSA's
    null device) to the end of its input."""
    if not (shutil.which("ffmpeg") and shutil.which("aplay")):
        pytest.skip("needs ffmpeg and aplay (scripts/install-players; .ci/run installs them)")
    known = musicgen("generate", "x", "-m", mono_ckpt, "-d", "1.5", "--seed", "2", "-o", "-").stdout
    endless = bytearray(known)
    endless[4:8] = endless[40:44] = struct.pack("<I", 0xFFFFFFFF)  # the endless stream's header, same samples
    for data in (known, bytes(endless)):
        decoded = subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "wav", "-i", "-", "-f", "s16le",
                                  "-"], input=data, capture_output=True, timeout=60)
        assert decoded.returncode == 0, decoded.stderr.decode()
        assert np.array_equal(np.frombuffer(decoded.stdout, "<i2"), parse_wav(data)[1][:, 0])
        played = subprocess.run(["aplay", "-D", "null", "-"], input=data, capture_output=True, timeout=60)
        assert played.returncode == 0 and b"Playing WAVE 'stdin' : Signed 16 bit Little Endian, Rate 32000 Hz, Mono" \
            in played.stderr, played.stderr.decode()


def fake_device(mode: str, out: Path) -> dict:
    return {"PYTHONPATH": os.pathsep.join([str(FAKE_SOUNDDEVICE), os.environ.get("PYTHONPATH", "")]),
            "FAKE_SOUNDDEVICE": mode, "FAKE_SOUNDDEVICE_OUT": str(out)}


def test_play_sends_the_files_samples_to_the_output_device(stereo_ckpt, tmp_path):
    """--play -o a.wav: the device gets the samples of the file the run writes (the file as without --play)."""
    played = musicgen("generate", "jazz", "-m", stereo_ckpt, "-d", "1.5", "--seed", "8", "--play", "--normalize", "none",
                      "-o", tmp_path / "a.wav", env=fake_device("ok", tmp_path / "played.raw"))
    assert played.returncode == 0, played.stderr.decode()
    assert played.stdout == b"" and "played 1.5 s" in played.stderr.decode()
    device = json.loads((tmp_path / "played.raw.json").read_text())
    assert device == {"samplerate": 32000, "channels": 2, "dtype": "float32", "started": True, "ended": "stop",
                      "closed": True}
    samples = np.fromfile(tmp_path / "played.raw", np.float32).reshape(-1, 2)
    file = sf.read(tmp_path / "a.wav", dtype="float32", always_2d=True)[0]
    assert samples.shape == file.shape and np.abs(samples - file).max() <= 1.01 / 32768  # the file's 16 bits


def test_ctrl_c_stops_the_output_device_at_once(mono_ckpt, tmp_path, reaped):
    out = tmp_path / "played.raw"
    proc = subprocess.Popen([sys.executable, "-m", "musicgen_cli", "generate", "x", "-m", str(mono_ckpt), "-d", "inf",
                             "--play"], stderr=subprocess.PIPE, env={**os.environ, **fake_device("ok", out)})
    reaped(proc)
    deadline = time.monotonic() + 120
    while (not out.exists() or out.stat().st_size < 32000 * 4) and time.monotonic() < deadline:  # 1 s played
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stderr = proc.communicate(timeout=120)[1].decode()
    assert proc.returncode == 130 and "the stream ended cleanly" in stderr, stderr
    assert json.loads(Path(f"{out}.json").read_text())["ended"] == "abort"  # not played out to the end


def test_a_piece_of_known_length_starts_playing_when_the_rest_will_be_ready_in_time(monkeypatch):
    """Made at half real time, 10 s start playing once 2/3 of it is made; an endless piece at once."""
    from musicgen_cli import streaming

    monkeypatch.syspath_prepend(str(FAKE_SOUNDDEVICE))
    monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
    monkeypatch.setenv("FAKE_SOUNDDEVICE", "ok")
    monkeypatch.setenv("FAKE_SOUNDDEVICE_OUT", os.devnull)
    clock = [100.0]
    monkeypatch.setattr(streaming.time, "perf_counter", lambda: clock[0])
    player = streaming.Player(1000, 1, 10_000)  # 10 s at 1000 Hz
    started = []
    for second in range(1, 11):
        clock[0] += 2.0  # a second of audio every 2 s
        player.write(np.zeros((1, 1000), np.float32))
        started.append(player.go.is_set())
    player.close()
    assert started == [False] * 6 + [True] * 4  # after 7 s: 3 s more take 6 s, and 7 s are queued
    endless = streaming.Player(1000, 1, None)
    endless.write(np.zeros((1, 10), np.float32))
    assert endless.go.is_set()
    endless.close()


def test_nothing_but_the_wav_reaches_standard_output():
    """While a stream runs, what else would be printed to standard output goes to standard error."""
    code = ("import numpy as np; from musicgen_cli.streaming import WavPipe; pipe = WavPipe(32000, 1, 2); "
            "print('stray', flush=True); pipe.write(np.zeros((1, 2))); pipe.close()")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    assert parse_wav(r.stdout)[0]["bytes"] == 4 and b"stray" in r.stderr


@pytest.mark.parametrize("mode, message", [
    ("missing", "--play needs the optional extra: pip install 'musicgen-cli[play]'"),
    ("no-portaudio", "--play cannot find PortAudio"),
    ("no-device", "--play found no audio output device"),
])
def test_play_without_the_extra_portaudio_or_a_device_says_so_in_one_line(mode, message, mono_ckpt, tmp_path):
    r = musicgen("generate", "x", "-m", mono_ckpt, "-d", "1", "--play", env=fake_device(mode, tmp_path / "p.raw"))
    lines = r.stderr.decode().strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1 and lines[0].startswith(f"musicgen: error: {message}"), lines
    assert r.stdout == b"" and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("extra, message", [
    (["-o", "-", "--play"], "give -o - or --play, not both"),
    (["-d", "inf", "-o", "x.wav"], "--duration inf goes on until Ctrl-C"),
    (["-o", "-", "--loop", "--bpm", "120"], "--loop cannot stream"),
    (["-o", "-", "--variations", "2"], "a stream plays one take"),
    (["-o", "-", "--normalize", "peak"], "--normalize peak needs the whole piece"),
])
def test_what_cannot_stream_is_refused_in_one_line(extra, message, mono_ckpt, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(os, "isatty", lambda fd: False)  # stdout is a pipe, as for a player
    code, lines = run_main(["generate", "x", "-m", mono_ckpt, *extra], capsys)
    assert code == 1 and len(lines) == 1 and message in lines[0], lines
    assert list(tmp_path.iterdir()) == []


def test_a_stream_is_not_written_into_a_terminal(mono_ckpt):
    main, child = pty.openpty()
    try:
        r = subprocess.run([sys.executable, "-m", "musicgen_cli", "generate", "x", "-m", str(mono_ckpt), "-o", "-"],
                           stdout=child, stderr=subprocess.PIPE, timeout=120)
    finally:
        os.close(child)
        os.close(main)
    assert r.returncode == 1 and "which is a terminal here" in r.stderr.decode()
