"""Reading, normalising and (atomically) writing audio files with libsndfile."""

import contextlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pyloudnorm
import soundfile as sf
import soxr

from .errors import MusicgenError

# extension -> (libsndfile format, subtype); libsndfile >= 1.1 encodes all four without ffmpeg
OUTPUT_FORMATS = {
    ".wav": ("WAV", "PCM_16"),
    ".flac": ("FLAC", "PCM_16"),
    ".ogg": ("OGG", "VORBIS"),
    ".mp3": ("MP3", "MPEG_LAYER_III"),
}
_ENCODER_OPTIONS = {".mp3": {"compression_level": 0.0}}  # best VBR quality (~130 kbit/s stereo at 32 kHz)
MP3_SAMPLE_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
NORMALIZATIONS = ("peak", "loudness", "none")
SILENCE = 1e-4  # peak amplitude (-80 dBFS) below which an input counts as silent
BLOCK_FRAMES = 1 << 16  # libsndfile 1.2's Vorbis encoder segfaults on one huge write (> ~1 min stereo)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def check_output_path(path, force: bool) -> Path:
    """Validate an output path before generation starts; return it resolved."""
    path = Path(path).expanduser().resolve()
    if path.is_dir():
        raise MusicgenError(f"{path} is a folder; give a file name such as {path / 'song.wav'}")
    if path.suffix.lower() not in OUTPUT_FORMATS:
        raise MusicgenError(f"unsupported output format {path.suffix or '(no extension)'!r} for {path.name}; "
                            f"use one of {', '.join(OUTPUT_FORMATS)}")
    folder = path.parent
    if not folder.exists():
        raise MusicgenError(f"output folder {folder} does not exist")
    if not folder.is_dir():
        raise MusicgenError(f"{folder} is not a folder, so {path.name} cannot be written in it")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise MusicgenError(f"output folder {folder} is not writable")
    try:  # os.access can be wrong (root, ACLs, read-only mounts): really try
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".musicgen-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise MusicgenError(f"output folder {folder} is not writable ({e.strerror or e})") from e
    if path.exists() and not force:
        raise MusicgenError(f"{path} exists; pass --force to overwrite")
    return path


def normalize(wav: np.ndarray, sample_rate: int, strategy: str = "peak",
              headroom_db: float = 1.0, target_lufs: float = -14.0) -> np.ndarray:
    """Scale `wav` [channels, samples] by one gain for all channels.

    "peak": the largest |sample| becomes 10**(-headroom_db/20) (e.g. -1 dBFS).
    "loudness": BS.1770 integrated loudness becomes `target_lufs`; if that would put the
        peak above the headroom limit, the gain is lowered so that the peak sits exactly at
        the limit (a plain peak limit, no compressor: the result is then quieter than the
        target). Audio shorter than one 400 ms gating block falls back to "peak".
    "none": unchanged.
    Silence (and audio too quiet to measure) is returned unchanged, never NaN/inf.
    """
    if strategy not in NORMALIZATIONS:
        raise MusicgenError(f"unknown normalization {strategy!r}; use one of {', '.join(NORMALIZATIONS)}")
    wav = np.asarray(wav, dtype=np.float32)
    peak = float(np.max(np.abs(wav))) if wav.size else 0.0
    limit = 10 ** (-headroom_db / 20)
    if strategy == "none" or peak == 0.0 or not np.isfinite(peak):
        return wav
    gain = limit / peak
    if strategy == "loudness":
        meter = pyloudnorm.Meter(sample_rate)
        if wav.shape[-1] / sample_rate > meter.block_size:  # else: too short to measure, use "peak"
            with np.errstate(divide="ignore"):
                loudness = meter.integrated_loudness(np.atleast_2d(wav).T.astype(np.float64))
            if not np.isfinite(loudness):  # below the -70 LUFS gate: nothing sensible to do
                return wav
            gain = min(gain, 10 ** ((target_lufs - loudness) / 20))
    return (wav * gain).astype(np.float32)


def _default_mode(path: Path) -> int:
    if path.exists():
        return path.stat().st_mode & 0o7777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_target(path):
    """Yield a hidden temp path next to `path`; on success move it onto `path`, else delete it."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    except OSError as e:
        raise MusicgenError(f"cannot write in {path.parent} ({e.strerror or e})") from e
    os.close(fd)
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)  # the data is on disk before the rename makes it visible
        finally:
            os.close(fd)
        os.chmod(tmp, _default_mode(path))  # mkstemp creates files as 0600
        os.replace(tmp, path)
    except BaseException as e:  # KeyboardInterrupt included: never leave the temp file behind
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, (OSError, sf.LibsndfileError)):
            raise MusicgenError(f"could not write {path}: {_one_line(e)}") from e
        raise


def write_audio(path, wav, sample_rate: int, normalization: str = "peak") -> None:
    """Write `wav` ([channels, samples] or [samples]; numpy or torch) to `path`, atomically.

    The format comes from the extension (see OUTPUT_FORMATS). Samples are clipped to [-1, 1]:
    libsndfile 1.2 clips for PCM itself, but Vorbis/MP3 would keep (or wrap) overs.
    """
    path = Path(path)
    fmt, subtype = OUTPUT_FORMATS.get(path.suffix.lower(), (None, None))
    if fmt is None:
        raise MusicgenError(f"unsupported output format {path.suffix!r}; use one of {', '.join(OUTPUT_FORMATS)}")
    if hasattr(wav, "detach"):  # torch.Tensor, without importing torch here
        wav = wav.detach().cpu().float().numpy()
    wav = np.atleast_2d(np.asarray(wav, dtype=np.float32))
    if wav.ndim != 2 or wav.shape[0] > 16:
        raise ValueError(f"expected audio shaped [channels, samples], got {wav.shape}")
    if wav.shape[1] == 0:
        raise MusicgenError(f"nothing to write to {path}: the audio is empty")
    if not np.all(np.isfinite(wav)):
        raise MusicgenError(f"refusing to write {path}: the audio contains NaN or infinite values")
    if fmt == "MP3" and sample_rate not in MP3_SAMPLE_RATES:
        raise MusicgenError(f"mp3 cannot store {sample_rate} Hz audio; use .wav, .flac or .ogg")
    frames = np.clip(normalize(wav, sample_rate, normalization), -1.0, 1.0).T
    with atomic_target(path) as tmp:
        with sf.SoundFile(tmp, "w", sample_rate, frames.shape[1], subtype, format=fmt,
                          **_ENCODER_OPTIONS.get(path.suffix.lower(), {})) as f:
            for start in range(0, len(frames), BLOCK_FRAMES):
                f.write(np.ascontiguousarray(frames[start:start + BLOCK_FRAMES]))


def write_json(path, obj) -> None:
    """Write `obj` as indented JSON to `path`, atomically."""
    with atomic_target(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, ensure_ascii=False)
            f.write("\n")


def sidecar_path(audio_path) -> Path:
    """The metadata file that goes with an audio file: song.wav -> song.json."""
    return Path(audio_path).with_suffix(".json")


def read_audio(path):
    """Read an audio file as float32 [channels, samples] and its sample rate."""
    path = Path(path).expanduser()
    if not path.exists():
        raise MusicgenError(f"audio file {path} does not exist")
    if path.is_dir():
        raise MusicgenError(f"{path} is a folder, not an audio file")
    if path.stat().st_size == 0:
        raise MusicgenError(f"audio file {path} is empty")
    try:
        wav, sample_rate = sf.read(path, dtype="float32", always_2d=True)
    except (RuntimeError, OSError) as e:  # sf.LibsndfileError is a RuntimeError
        raise MusicgenError(f"could not read {path} as audio ({_one_line(e)})") from e
    if wav.shape[0] == 0:
        raise MusicgenError(f"audio file {path} contains no samples")
    if not np.all(np.isfinite(wav)):
        raise MusicgenError(f"audio file {path} contains NaN or infinite samples")
    return np.ascontiguousarray(wav.T), sample_rate


def is_silent(wav) -> bool:
    """Whether the peak |sample| of `wav` (numpy, or a CPU torch tensor) is below SILENCE."""
    wav = np.asarray(wav)
    return wav.size == 0 or float(np.max(np.abs(wav))) < SILENCE


def match_channels(wav: np.ndarray, channels: int) -> np.ndarray:
    """[C, N] -> [channels, N]: a mono signal is copied to every channel; several are averaged to mono."""
    if wav.shape[0] == channels:
        return wav
    if wav.shape[0] == 1:
        return np.repeat(wav, channels, axis=0)
    if channels == 1:
        return wav.mean(axis=0, keepdims=True)
    raise MusicgenError(f"cannot turn {wav.shape[0]}-channel audio into {channels} channels")


def resample(wav: np.ndarray, from_sr: int, to_sr: int) -> np.ndarray:
    """Resample [channels, samples] (or [samples]) audio with soxr's high-quality filter."""
    wav = np.asarray(wav, dtype=np.float32)
    if from_sr == to_sr:
        return wav
    out = soxr.resample(wav.T, from_sr, to_sr, quality="HQ")
    return np.ascontiguousarray(out.T, dtype=np.float32)
