"""Hearing the music while it is made: `-o -` (a WAV stream on standard output) and `--play`.

The generator hands over each frame as soon as all its codebooks are drawn (generation.py,
`on_frames`); a `Listener` decodes them a chunk at a time (codec_stream.py: the same samples as
decoding the whole piece), cleans them as a file is cleaned (audio.Cleaner), shapes them as the
command's file would be (bars cut to length; `continue` spliced onto the user's own samples) and
hands them to a sink. So a streamed run equals the file the same seed makes with `--normalize
none`: a file's peak or loudness normalisation scales the whole piece by one gain that is only
known at its end, which a stream cannot wait for.

The WAV stream is 16-bit PCM, as our WAV files. Its header gives the exact sizes when the length is
known; an endless stream (`--duration inf`) says 0xFFFFFFFF for the RIFF and data sizes, as ffmpeg
does on an output it cannot seek (aplay plays such a data chunk to the end of its input).
"""

from __future__ import annotations

import contextlib
import math
import os
import queue
import struct
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from . import interrupts
from .errors import MusicgenError
from .files import one_line

if TYPE_CHECKING:  # numpy is imported where it is used: the command line imports this module early
    import numpy as np

CHUNK_FRAMES = 10  # frames decoded together once the first audio is out (0.2 s at 50 Hz)
PLAYER_QUEUE = 64  # chunks waiting for the output device at most: memory stays flat
UNKNOWN_SIZE = 0xFFFFFFFF
STDOUT = "-"


@dataclass(frozen=True)
class Request:
    """What was asked for: audio on standard output (`-o -`) or on the output device (`--play`),
    `endless` (--duration inf), and a file also written at the end (--play -o song.wav)."""

    stdout: bool = False
    play: bool = False
    endless: bool = False
    file: Path | None = None

    @property
    def on(self) -> bool:
        return self.stdout or self.play

    def files(self, paths: list) -> list:
        """The files to write: none for a stream alone."""
        return [] if self.on and self.file is None else paths

    def output(self, output: Path | None) -> Path | None:
        """The output file the command line named (not `-`)."""
        return self.file if self.on else output


def request(output: Path | None, play: bool, duration: float | None, loop: bool = False, takes: int = 1,
            normalize: str | None = None) -> Request:
    """Check what the command line asks for, before any model loads (a Request that is not `on`:
    no stream). `normalize`: the --normalize the user gave (None: the default)."""
    stdout = output is not None and str(output) == STDOUT
    endless = duration is not None and math.isinf(duration) and duration > 0
    if not (stdout or play):
        if endless:
            raise MusicgenError("--duration inf goes on until Ctrl-C: use it with -o - (a WAV stream) or --play")
        return Request()
    if stdout and play:
        raise MusicgenError("give -o - or --play, not both")
    if endless and output is not None and not stdout:
        raise MusicgenError("an endless stream has no end to write a file at; drop -o, or give a --duration")
    if loop:
        raise MusicgenError("--loop cannot stream: a loop's end is crossfaded into its opening")
    if takes > 1:
        raise MusicgenError("a stream plays one take: give one prompt, without --variations")
    if normalize not in (None, "none") and (stdout or output is None):
        raise MusicgenError(f"--normalize {normalize} needs the whole piece, which a stream does not wait for; "
                            "a stream is as --normalize none")
    if stdout and os.isatty(1):
        raise MusicgenError("-o - writes WAV audio to standard output, which is a terminal here; "
                            "pipe it into a player, e.g. | ffplay -nodisp -")
    if play:
        check_player()
    return Request(stdout, play, endless, None if stdout else output)


def sounddevice():
    """The optional `play` extra's module, or one line saying what is missing."""
    try:
        import sounddevice as sd
    except ImportError as e:
        raise MusicgenError("--play needs the optional extra: pip install 'musicgen-cli[play]'") from e
    except OSError as e:  # sounddevice is there, PortAudio is not
        raise MusicgenError(f"--play cannot find PortAudio ({one_line(e)}); install it, e.g. "
                            "sudo apt install libportaudio2") from e
    return sd


def check_player() -> None:
    sd = sounddevice()
    try:
        sd.query_devices(kind="output")
    except Exception as e:  # sd.PortAudioError, ValueError: no default output device
        raise MusicgenError(f"--play found no audio output device ({one_line(e, 160)})") from e


def wav_header(sample_rate: int, channels: int, samples: int | None) -> bytes:
    """A 16-bit PCM WAV header; samples None: sizes unknown (0xFFFFFFFF)."""
    data = UNKNOWN_SIZE if samples is None else samples * channels * 2
    riff = UNKNOWN_SIZE if samples is None else 36 + data
    return (b"RIFF" + struct.pack("<I", riff) + b"WAVEfmt " +
            struct.pack("<IHHIIHH", 16, 1, channels, sample_rate, sample_rate * channels * 2, channels * 2, 16) +
            b"data" + struct.pack("<I", data))


def pcm16(wav: np.ndarray, sample_rate: int) -> bytes:
    """[channels, n] float -> interleaved little-endian 16-bit samples, converted by libsndfile as
    it converts our WAV files (audio.write_audio), so a stream's samples are a file's, bit for bit."""
    import io

    import numpy as np
    import soundfile as sf

    out = io.BytesIO()
    sf.write(out, np.clip(wav, -1.0, 1.0).T, sample_rate, subtype="PCM_16", format="RAW", endian="LITTLE")
    return out.getvalue()


class WavPipe:
    """A WAV stream on standard output. Whatever else would reach standard output (a stray print,
    a compiler's chatter) goes to standard error instead, so the stream stays clean."""

    def __init__(self, sample_rate: int, channels: int, samples: int | None):
        import soundfile  # noqa: F401  (pcm16's, imported now rather than on the way to the first audio)

        sys.stdout.flush()
        self.fd, self.saved = os.dup(1), os.dup(1)
        os.dup2(2, 1)
        self.sample_rate = sample_rate
        self.write_bytes(wav_header(sample_rate, channels, samples))

    def write(self, wav: np.ndarray) -> None:
        self.write_bytes(pcm16(wav, self.sample_rate))

    def write_bytes(self, data: bytes) -> None:
        data = memoryview(data)  # written whole: Listener defers Ctrl-C until a chunk is out
        try:
            while data:
                data = data[os.write(self.fd, data) :]
        except BrokenPipeError:
            raise MusicgenError("the stream's reader went away (the player was closed?)") from None

    def close(self, interrupted: bool = False) -> None:
        os.dup2(self.saved, 1)
        for fd in (self.fd, self.saved):
            os.close(fd)


class Player:
    """The default output device, through sounddevice. A thread feeds it from a bounded queue, so
    generation never waits for the device (unless the queue is full). A piece of known length
    starts playing once, at the rate it is being made, the rest will be made before what is
    queued has played; an endless one at once."""

    def __init__(self, sample_rate: int, channels: int, samples: int | None):
        sd = sounddevice()
        try:
            self.stream = sd.OutputStream(samplerate=sample_rate, channels=channels, dtype="float32")
        except Exception as e:
            raise MusicgenError(f"--play could not open the audio output ({one_line(e, 160)})") from e
        self.sample_rate, self.samples, self.given, self.queued = sample_rate, samples, 0, 0
        self.start, self.error = time.perf_counter(), None
        self.queue: queue.Queue = queue.Queue(PLAYER_QUEUE)
        self.go = threading.Event()
        self.thread = threading.Thread(target=self._feed, daemon=True)
        self.thread.start()

    def _feed(self) -> None:
        try:
            self.go.wait()
            self.stream.start()
            while (block := self.queue.get()) is not None:
                self.stream.write(block)
        except Exception as e:  # seen by the next write or close
            self.error = e

    def write(self, wav) -> None:
        import numpy as np

        self._check()
        self.queue.put(np.ascontiguousarray(np.clip(wav, -1.0, 1.0).T, dtype=np.float32))
        self.given += wav.shape[-1]
        if not self.go.is_set() and self._ready():
            self.go.set()

    def _ready(self) -> bool:
        if self.samples is None or self.queue.qsize() >= PLAYER_QUEUE - 1:
            return True
        rate = self.given / max(time.perf_counter() - self.start, 1e-3)  # samples made a second
        return self.given / self.sample_rate >= (self.samples - self.given) / rate

    def close(self, interrupted: bool = False) -> None:
        if interrupted:
            with contextlib.suppress(Exception):
                self.stream.abort()
            return
        self.go.set()
        self.queue.put(None)
        self.thread.join()
        self._check()
        self.stream.stop()
        self.stream.close()

    def _check(self) -> None:
        if self.error is not None:
            raise MusicgenError(f"--play: the audio output failed ({one_line(self.error, 160)})")


class Trim:
    """Keep samples first .. last of what passes (last None: all from first on)."""

    def __init__(self, first: int = 0, last: int | None = None):
        self.first, self.last, self.seen = first, last, 0

    def push(self, wav: np.ndarray) -> np.ndarray:
        at, self.seen = self.seen, self.seen + wav.shape[-1]
        stop = wav.shape[-1] if self.last is None else min(wav.shape[-1], self.last - at)
        return wav[..., max(0, self.first - at) : max(0, stop)]

    def end(self) -> None:
        return None


class Listener:
    """Generation's `on_frames`: the frames of batch row `row` decoded, cleaned, shaped (`shaper`,
    e.g. continuation.Splice) and trimmed to `samples` (None: endless), then given to `sink`."""

    def __init__(self, mg, sink, samples: int | None, shaper=None, row: int = 0, start: int = 0):
        from . import chunks
        from .audio import Cleaner

        stages = [chunks.Map(lambda codes: codes[row : row + 1]), mg.codec.stream(),
                  chunks.Map(lambda wav: wav[0].cpu().numpy()), Cleaner(mg.sample_rate)]
        trim = Trim(start, samples)
        self.chain = chunks.Chain(*stages, *([shaper] if shaper is not None else []), trim)
        self.mg, self.sink, self.sample_rate = mg, sink, mg.sample_rate
        self.pending: list = []
        self.sent, self.began, self.first_audio = 0, time.perf_counter(), None
        if hasattr(shaper, "opening"):  # what comes before anything generated (continue: the user's audio)
            self._send(trim.push(shaper.opening()))

    def __call__(self, first: int, codes) -> None:
        self.pending.append(codes)
        if sum(c.shape[-1] for c in self.pending) >= (CHUNK_FRAMES if self.sent else 1):
            with interrupts.deferred():
                codes = self.pending[0] if len(self.pending) == 1 else _cat(self.pending)
                self.pending = []
                with self.mg.backend.threads():
                    self._send(self.chain.push(codes))

    def _send(self, wav) -> None:
        if wav is None or not wav.shape[-1]:
            return
        self.sink.write(wav)
        self.sent += wav.shape[-1]
        if self.first_audio is None:
            self.first_audio = time.perf_counter() - self.began

    def close(self, interrupted: bool = False) -> None:
        """The piece's end (or Ctrl-C's): what is pending decoded as the end, faded out, and sent."""
        with interrupts.deferred():
            try:
                with self.mg.backend.threads():
                    if self.pending:
                        self._send(self.chain.push(_cat(self.pending)))
                    self._send(self.chain.end())
            finally:
                self.sink.close(interrupted)

    @property
    def seconds(self) -> float:
        return self.sent / self.sample_rate


def _cat(parts: list):
    import torch

    return torch.cat(parts, dim=-1)


@contextlib.contextmanager
def listening(req: Request, mg, samples: int | None, say, shaper=None, row: int = 0, start: int = 0):
    """A Listener for `req` around a generation (None when there is no stream): it ends the stream
    when the generation ends, and on Ctrl-C ends it cleanly with what was made."""
    if not req.on:
        yield None
        return
    channels = mg.channels if shaper is None else shaper.channels
    samples = None if req.endless else samples
    length = None if samples is None else samples - start
    sink = WavPipe(mg.sample_rate, channels, length) if req.stdout else Player(mg.sample_rate, channels, length)
    listener = Listener(mg, sink, samples, shaper, row, start)
    try:
        yield listener
    except KeyboardInterrupt:
        listener.close(interrupted=True)
        say(f"the stream ended cleanly after {listener.seconds:.1f} s of audio")
        raise
    except BaseException:
        sink.close(interrupted=True)
        raise
    listener.close()
    first = "" if listener.first_audio is None else f"; first audio {listener.first_audio:.2f} s after the model was loaded"
    say(f"{'streamed' if req.stdout else 'played'} {listener.seconds:.1f} s{first}")
