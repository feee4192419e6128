"""Audio itself: reading, resampling, channel matching, cleaning, normalising and writing (libsndfile)."""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import numpy as np

from .errors import MusicgenError
from .files import OUTPUT_FORMATS, json_writer, one_line, sidecar_path, write_files
from .options import NORMALIZATIONS

# soundfile, soxr and pyloudnorm are imported where they are used: the command line imports this
# module to check output paths before anything slow loads.

_ENCODER_OPTIONS = {".mp3": {"compression_level": 0.0}}  # best VBR quality (~130 kbit/s stereo at 32 kHz)
MP3_SAMPLE_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
MAX_INPUT_RATE = 768000  # Hz: a header claiming more is damaged (and would ask for a huge array)
SILENCE = 1e-4  # peak amplitude (-80 dBFS) below which an input counts as silent
BLOCK_FRAMES = 1 << 16  # libsndfile 1.2's Vorbis encoder segfaults on one huge write (> ~1 min stereo)
DC_CUTOFF_HZ = 20.0  # remove_dc: below this, generated audio holds only offset and drift
EDGE_FADE_SECONDS = 0.005


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
        import pyloudnorm

        meter = pyloudnorm.Meter(sample_rate)
        if wav.shape[-1] / sample_rate > meter.block_size:  # else: too short to measure, use "peak"
            with np.errstate(divide="ignore"):
                loudness = meter.integrated_loudness(np.atleast_2d(wav).T.astype(np.float64))
            if not np.isfinite(loudness):  # below the -70 LUFS gate: nothing sensible to do
                return wav
            gain = min(gain, 10 ** ((target_lufs - loudness) / 20))
    return (wav * gain).astype(np.float32)


def write_audio(path, wav, sample_rate: int, normalization: str = "peak", sidecar: dict | None = None,
                force: bool = True, loop: tuple[int, int] | None = None) -> Path:
    """Write `wav` ([channels, samples] or [samples]; numpy or torch) to `path`, atomically, with
    `sidecar` as JSON next to it (both or neither). Returns the path written: without `force`, a
    file that appeared meanwhile is kept and a numbered name is used (files.write_files).

    The format comes from the extension (see OUTPUT_FORMATS); `loop` (start, end), inclusive
    sample indices, becomes a WAV file's `smpl` chunk. Samples are clipped to [-1, 1]:
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
    import soundfile as sf

    def write(tmp):
        with sf.SoundFile(tmp, "w", sample_rate, frames.shape[1], subtype, format=fmt,
                          **_ENCODER_OPTIONS.get(path.suffix.lower(), {})) as f:
            for start in range(0, len(frames), BLOCK_FRAMES):
                f.write(np.ascontiguousarray(frames[start:start + BLOCK_FRAMES]))
        if loop is not None and fmt == "WAV":  # a standard loop chunk that samplers read
            from .loops import write_smpl

            write_smpl(Path(tmp), sample_rate, *loop)

    # the sidecar takes its name first: an audio file never lacks its sidecar, even after a kill
    # between the two renames (which leaves a sidecar alone; `musicgen batch` then makes that item again)
    targets = ([(sidecar_path(path), json_writer(sidecar))] if sidecar is not None else []) + [(path, write)]
    return write_files(targets, force)[-1]


@contextlib.contextmanager
def _reading(path: Path):
    """Any failure to read `path` as audio becomes one line."""
    try:
        yield
    except (RuntimeError, OSError, ValueError, TypeError, OverflowError, ZeroDivisionError) as e:
        # sf.LibsndfileError is a RuntimeError; the others: headers with impossible values
        raise MusicgenError(f"could not read {path} as audio ({one_line(e)})") from e


def header(path):
    """An audio file's header, checked before any sample is read: soundfile's info (frames,
    samplerate, channels) of a file that exists, is not empty and claims a plausible format."""
    path = Path(path).expanduser()
    if not path.exists():
        raise MusicgenError(f"audio file {path} does not exist")
    if path.is_dir():
        raise MusicgenError(f"{path} is a folder, not an audio file")
    if path.stat().st_size == 0:
        raise MusicgenError(f"audio file {path} is empty")
    import soundfile as sf

    with _reading(path):
        info = sf.info(str(path))
        if not 0 < info.samplerate <= MAX_INPUT_RATE or not 0 < info.channels <= 64:
            raise MusicgenError(f"{path} claims {info.samplerate} Hz and {info.channels} channels; not audio we can read")
    return info


def read_audio(path, max_seconds: float | None = None, first_seconds: float | None = None,
               last_seconds: float | None = None):
    """Read an audio file as float32 [channels, samples] and its sample rate.

    The length comes from the header first: a file longer than `max_seconds` is refused before any
    sample is read. With `first_seconds` only that much of its start is read; with `last_seconds`
    only that much of its end (a seek: nothing before it is read, whatever the file's length)."""
    path = Path(path).expanduser()
    info = header(path)
    import soundfile as sf

    with _reading(path):
        seconds = info.frames / info.samplerate
        if max_seconds is not None and first_seconds is None and last_seconds is None and seconds > max_seconds:
            raise MusicgenError(f"{path} lasts {seconds:.10g} s (from its header); at most {max_seconds:g} s "
                                "can be used here")
        count = -1  # to the end (a compressed file's header may only estimate its length)
        if first_seconds is not None:
            count = max(1, math.ceil(first_seconds * info.samplerate))
        elif last_seconds is not None:
            count = min(info.frames, max(1, math.ceil(last_seconds * info.samplerate)))
        start = 0 if last_seconds is None else info.frames - count
        wav, _ = sf.read(str(path), frames=count, start=start, dtype="float32", always_2d=True)
    if wav.shape[0] == 0:
        raise MusicgenError(f"audio file {path} contains no samples")
    if last_seconds is not None and wav.shape[0] != count:
        raise MusicgenError(f"{path} holds fewer samples than its header says; is it cut short?")
    if not np.all(np.isfinite(wav)):
        raise MusicgenError(f"audio file {path} contains NaN or infinite samples")
    return np.ascontiguousarray(wav.T), info.samplerate


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
    import soxr

    out = soxr.resample(wav.T, from_sr, to_sr, quality="HQ")
    return np.ascontiguousarray(out.T, dtype=np.float32)


def remove_dc(wav: np.ndarray, sample_rate: int) -> np.ndarray:
    """Generated audio [..., samples] without its DC offset and the drift below DC_CUTOFF_HZ
    (zero-phase: a raised-cosine gain over the spectrum), faded in and out over EDGE_FADE_SECONDS
    so that the file neither starts nor ends with a click."""
    wav = np.asarray(wav, dtype=np.float32)
    n = wav.shape[-1]
    wav = wav - wav.mean(axis=-1, keepdims=True)
    ramp = np.clip(np.fft.rfftfreq(n, 1.0 / sample_rate) / DC_CUTOFF_HZ, 0.0, 1.0)
    wav = np.fft.irfft(np.fft.rfft(wav, axis=-1) * (0.5 - 0.5 * np.cos(np.pi * ramp)), n=n, axis=-1)
    fade = min(round(EDGE_FADE_SECONDS * sample_rate), n // 2)
    if fade:
        edge = np.linspace(0.0, 1.0, fade + 2)[1:-1]
        wav[..., :fade] *= edge
        wav[..., n - fade :] *= edge[::-1]
    return wav.astype(np.float32)
