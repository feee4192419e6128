import json
import os
import stat

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf
import torch

from musicgen_cli import audio, files
from musicgen_cli.audio import normalize, read_audio, resample, write_audio
from musicgen_cli.files import OUTPUT_FORMATS, check_output_path, sidecar_path, write_json
from musicgen_cli.errors import MusicgenError

SR = 32000
LIMIT = 10 ** (-1 / 20)  # -1 dBFS


def tone(seconds=1.0, channels=2, sr=SR, amp=0.5, noise=0.0, seed=0):
    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.default_rng(seed)
    chans = [amp * np.sin(2 * np.pi * (220 * (c + 1)) * t) + noise * rng.standard_normal(len(t))
             for c in range(channels)]
    return np.stack(chans).astype(np.float32)


def leftovers(folder, keep):
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


# --- writing ---------------------------------------------------------------------------------

@pytest.mark.parametrize("ext", list(OUTPUT_FORMATS))
@pytest.mark.parametrize("channels", [1, 2])
def test_round_trip(tmp_path, ext, channels):
    wav = tone(channels=channels)
    path = tmp_path / f"song{ext}"
    write_audio(path, wav, SR, normalization="none")
    back, sr = sf.read(path, dtype="float32", always_2d=True)
    info = sf.info(path)
    assert (sr, back.shape) == (SR, (wav.shape[1], channels))
    assert (info.format, info.subtype) == OUTPUT_FORMATS[ext]
    if ext in (".wav", ".flac"):
        np.testing.assert_allclose(back.T, wav, atol=1.5 / 32768)
    else:  # lossy: only check the level survived (within 1 dB)
        ratio = np.sqrt(np.mean(back.T ** 2) / np.mean(wav ** 2))
        assert 10 ** (-1 / 20) < ratio < 10 ** (1 / 20)
    assert leftovers(tmp_path, {path.name}) == []


def test_mono_1d_and_torch_input(tmp_path):
    write_audio(tmp_path / "a.wav", tone(channels=1)[0], SR)
    write_audio(tmp_path / "b.flac", torch.from_numpy(tone()), SR)
    assert sf.info(tmp_path / "a.wav").channels == 1
    assert sf.info(tmp_path / "b.flac").channels == 2


def test_written_peak_is_minus_1_dbfs(tmp_path):
    write_audio(tmp_path / "x.wav", tone(amp=0.05), SR)  # default "peak" normalisation
    back, _ = sf.read(tmp_path / "x.wav")
    assert abs(np.max(np.abs(back)) - LIMIT) < 2 / 32768


@pytest.mark.parametrize("ext", list(OUTPUT_FORMATS))
def test_overs_are_clipped(tmp_path, ext):
    write_audio(tmp_path / f"x{ext}", tone(amp=2.0), SR, normalization="none")
    back, _ = sf.read(tmp_path / f"x{ext}", dtype="float32")
    assert 0.99 < np.max(np.abs(back)) < 1.3  # lossy codecs overshoot a little; unclipped would be ~2


def test_new_file_gets_normal_permissions(tmp_path):
    write_audio(tmp_path / "x.wav", tone(), SR)
    write_json(tmp_path / "x.json", {})
    umask = os.umask(0)
    os.umask(umask)
    for name in ("x.wav", "x.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask


def test_written_in_blocks(tmp_path, monkeypatch):
    sizes, real_write = [], sf.SoundFile.write
    monkeypatch.setattr(sf.SoundFile, "write", lambda self, data: (sizes.append(len(data)), real_write(self, data)))
    write_audio(tmp_path / "x.ogg", tone(seconds=5), SR)
    assert sum(sizes) == 5 * SR and max(sizes) <= audio.BLOCK_FRAMES and len(sizes) > 1


def test_mp3_rejects_unsupported_rate(tmp_path):
    with pytest.raises(MusicgenError, match="mp3"):
        write_audio(tmp_path / "x.mp3", tone(sr=96000, seconds=0.1), 96000)
    assert leftovers(tmp_path, set()) == []


def test_bad_audio_is_rejected(tmp_path):
    with pytest.raises(MusicgenError, match="empty"):
        write_audio(tmp_path / "x.wav", np.zeros((2, 0), np.float32), SR)
    with pytest.raises(MusicgenError, match="NaN"):
        write_audio(tmp_path / "x.wav", np.full((1, 10), np.nan, np.float32), SR)
    with pytest.raises(MusicgenError, match=r"\.wav"):
        write_audio(tmp_path / "x.aiff", tone(), SR)
    assert leftovers(tmp_path, set()) == []


def test_interrupted_audio_write_leaves_destination_untouched(tmp_path, monkeypatch):
    path = tmp_path / "song.wav"
    path.write_bytes(b"precious")

    def interrupt(self, data):
        raise KeyboardInterrupt

    monkeypatch.setattr(sf.SoundFile, "write", interrupt)
    with pytest.raises(KeyboardInterrupt):
        write_audio(path, tone(), SR)
    assert path.read_bytes() == b"precious"
    assert leftovers(tmp_path, {"song.wav"}) == []


def test_failed_write_becomes_musicgen_error(tmp_path, monkeypatch):
    def disk_full(self, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sf.SoundFile, "write", disk_full)
    with pytest.raises(MusicgenError, match="No space left"):
        write_audio(tmp_path / "song.flac", tone(), SR)
    assert leftovers(tmp_path, set()) == []


def test_json_sidecar(tmp_path, monkeypatch):
    path = sidecar_path(tmp_path / "song.wav")
    assert path == tmp_path / "song.json"
    write_json(path, {"prompt": "lo-fi ♪", "seed": 3})
    assert json.loads(path.read_text(encoding="utf-8")) == {"prompt": "lo-fi ♪", "seed": 3}
    assert path.read_text(encoding="utf-8").startswith('{\n  "')

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(json, "dump", interrupt)
    with pytest.raises(KeyboardInterrupt):
        write_json(path, {"other": 1})
    assert json.loads(path.read_text(encoding="utf-8"))["seed"] == 3
    assert leftovers(tmp_path, {"song.json"}) == []


# --- normalisation ---------------------------------------------------------------------------

def test_peak_normalisation():
    out = normalize(tone(amp=0.1), SR, "peak")
    assert out.dtype == np.float32
    assert np.max(np.abs(out)) == pytest.approx(LIMIT, rel=1e-6)
    assert np.max(np.abs(normalize(tone(amp=0.1), SR, "peak", headroom_db=3))) == pytest.approx(10 ** (-3 / 20))


def test_loudness_normalisation_hits_target():
    wav = tone(seconds=5, amp=0.02, noise=0.01)
    out = normalize(wav, SR, "loudness", target_lufs=-14.0)
    measured = pyloudnorm.Meter(SR).integrated_loudness(out.T.astype(np.float64))
    assert abs(measured - (-14.0)) < 0.5
    assert np.max(np.abs(out)) <= LIMIT + 1e-6


def test_loudness_normalisation_respects_peak_limit():
    spiky = tone(seconds=5, amp=0.01)
    spiky[:, 1000] = 0.5  # one click: loudness-only gain would push it far above 0 dBFS
    out = normalize(spiky, SR, "loudness", target_lufs=-14.0)
    assert np.max(np.abs(out)) == pytest.approx(LIMIT, rel=1e-5)


@pytest.mark.parametrize("strategy", ["peak", "loudness", "none"])
@pytest.mark.parametrize("samples", [0, 10, 5 * SR])
def test_silence_stays_finite(strategy, samples):
    out = normalize(np.zeros((2, samples), np.float32), SR, strategy)
    assert out.shape == (2, samples) and np.all(out == 0)


def test_short_and_whisper_quiet_audio_stays_finite():
    short = normalize(tone(seconds=0.1, amp=0.1), SR, "loudness")
    assert np.max(np.abs(short)) == pytest.approx(LIMIT, rel=1e-5)  # falls back to peak
    quiet = normalize(tone(amp=1e-6), SR, "loudness")  # below the -70 LUFS absolute gate
    assert np.all(np.isfinite(quiet))


def test_none_and_unknown_strategy():
    wav = tone(amp=0.3)
    np.testing.assert_array_equal(normalize(wav, SR, "none"), wav)
    with pytest.raises(MusicgenError, match="peak"):
        normalize(wav, SR, "loud")


# --- output path checks ----------------------------------------------------------------------

def test_check_output_path_ok(tmp_path):
    assert check_output_path(tmp_path / "a" / ".." / "song.MP3", force=False) == tmp_path / "song.MP3"
    (tmp_path / "song.wav").write_bytes(b"x")
    assert check_output_path(tmp_path / "song.wav", force=True) == tmp_path / "song.wav"
    assert leftovers(tmp_path, {"song.wav"}) == []  # the probe file is gone


@pytest.mark.parametrize("name, message", [
    ("song.aiff", r"\.wav, \.flac, \.ogg, \.mp3"),
    ("song", "no extension"),
    ("missing/song.wav", "does not exist"),
    ("file.txt/song.wav", "not a folder"),
    ("folder.wav", "is a folder"),
])
def test_check_output_path_errors(tmp_path, name, message):
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "folder.wav").mkdir()
    with pytest.raises(MusicgenError, match=message):
        check_output_path(tmp_path / name, force=True)


def test_existing_file_needs_force(tmp_path):
    path = tmp_path / "song.wav"
    path.write_bytes(b"precious")
    with pytest.raises(MusicgenError, match="exists; pass --force to overwrite"):
        check_output_path(path, force=False)
    assert path.read_bytes() == b"precious"


def test_unwritable_folder_detected_by_access(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "access", lambda *args, **kwargs: False)
    with pytest.raises(MusicgenError, match="not writable"):
        check_output_path(tmp_path / "song.wav", force=False)


def test_unwritable_folder_detected_by_probe(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):  # what a read-only mount does even to root
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(files.tempfile, "mkstemp", refuse)
    with pytest.raises(MusicgenError, match="not writable.*Read-only"):
        check_output_path(tmp_path / "song.wav", force=False)


# --- reading and resampling ------------------------------------------------------------------

def test_read_audio_round_trip(tmp_path):
    wav = tone(channels=2)
    sf.write(tmp_path / "in.flac", wav.T, SR)
    back, sr = read_audio(tmp_path / "in.flac")
    assert sr == SR and back.dtype == np.float32 and back.shape == wav.shape
    np.testing.assert_allclose(back, wav, atol=1.5 / 32768)


def test_read_audio_errors(tmp_path):
    (tmp_path / "notes.wav").write_text("this is not audio")
    (tmp_path / "empty.wav").write_bytes(b"")
    sf.write(tmp_path / "nan.wav", np.array([0.0, np.nan, 0.1]), SR, subtype="FLOAT")
    sf.write(tmp_path / "zero.wav", np.zeros((0, 1)), SR)
    for name, message in [("nothing.wav", "does not exist"), (".", "is a folder"), ("notes.wav", "as audio"),
                          ("empty.wav", "is empty"), ("nan.wav", "NaN"), ("zero.wav", "no samples")]:
        with pytest.raises(MusicgenError, match=message):
            read_audio(tmp_path / name)


def test_resample():
    wav = tone(seconds=1, sr=48000, amp=0.5)
    out = resample(wav, 48000, SR)
    assert out.dtype == np.float32 and out.shape == (2, SR)
    np.testing.assert_allclose(out[:, 1000:-1000], tone(amp=0.5)[:, 1000:-1000], atol=1e-3)
    assert resample(wav[0], 48000, 24000).shape == (24000,)
    np.testing.assert_array_equal(resample(wav, 48000, 48000), wav)
