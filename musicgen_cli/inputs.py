"""The user's inputs, read and checked before any model loads: prompts, audio, MIDI, chord charts."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from .errors import MusicgenError
from .options import MAX_DURATION


def read_prompts(prompts: list[str], prompts_file: Optional[Path]) -> list[str]:
    prompts = list(prompts or [])
    if prompts_file is not None:
        try:
            lines = prompts_file.read_text(encoding="utf-8").splitlines()
        except IsADirectoryError:
            raise MusicgenError(f"prompts file {prompts_file} is a directory")
        except (OSError, UnicodeDecodeError) as e:
            raise MusicgenError(f"cannot read prompts file {prompts_file}: {e.strerror or e}")
        from_file = [line.strip() for line in lines if line.strip()]
        if not from_file:
            raise MusicgenError(f"prompts file {prompts_file} has no prompts (one per line)")
        prompts += from_file
    if not prompts:
        raise MusicgenError("give a description, e.g. musicgen generate \"lo-fi jazz\", or --prompts-file")
    if any(not p.strip() for p in prompts):
        raise MusicgenError("a prompt is empty")
    return prompts


def read_input(path: Path, output: Optional[Path], what: str, max_seconds: float = MAX_DURATION,
               first_seconds: Optional[float] = None, last_seconds: Optional[float] = None) -> tuple:
    """Read the user's audio before any model loads: (wav [C, N] float32, sample rate); its length
    is checked from the header first (at most `max_seconds`), and only `first_seconds` (or
    `last_seconds`: a seek, nothing before is read) are read if given."""
    from . import audio

    wav, sr = audio.read_audio(path, max_seconds, first_seconds, last_seconds)
    if audio.is_silent(wav):
        where = f"{path} is silent" if last_seconds is None else f"the last {wav.shape[1] / sr:.3g} s of {path} are silent"
        raise MusicgenError(f"{where}; {what}")
    if output is not None and Path(output).expanduser().resolve() == Path(path).expanduser().resolve():
        raise MusicgenError(f"-o {output} is the input file; choose another output name")
    return wav, sr


def audio_length(path: Path) -> tuple[int, int, int]:
    """(frames, sample rate, channels) of the user's audio, from its header: nothing else is read."""
    from . import audio

    info = audio.header(path)
    return info.frames, info.samplerate, info.channels


# `continue --only-new` reads what the model hears and this much before it: starting on the model
# rate's grid skips up to 1 s (continuation.at_model_rate), and the resampler settles before the prompt
HEARD_MARGIN = 1.5


def read_end(path: Path, output: Optional[Path], heard: Optional[float]) -> tuple:
    """`continue`'s input, read before any model loads: (wav [C, n], sample rate, index of wav's first
    sample in the input). The whole input (`heard` None: the output holds it), else only its last
    `heard` seconds and HEARD_MARGIN before them, whatever the input's length."""
    what = "there is nothing to continue"
    if heard is None:
        wav, sr = read_input(path, output, what)
        return wav, sr, 0
    frames = audio_length(path)[0]
    wav, sr = read_input(path, output, what, last_seconds=heard + HEARD_MARGIN)
    return wav, sr, frames - wav.shape[1]


MIDI_SUFFIXES = (".mid", ".midi")


def read_tune(input: Optional[Path], output: Optional[Path], chords: Optional[str], bpm: float,
              beats_per_chord: float, track: Optional[str], duration: Optional[float] = None) -> tuple:
    """What `melody` follows, read before any model loads: (kind, data, seconds, what) where kind
    is "audio" (data: wav, rate) or "score" (data: a one-hot chroma from MIDI or a chord chart)."""
    from . import score

    if (input is None) == (chords is None):
        raise MusicgenError("give the tune to follow: an audio or MIDI file, or --chords \"Am F C G\" (not both)")
    if chords is not None:
        c, seconds = score.chords_chroma(chords, bpm, beats_per_chord)
        return "score", c, seconds, "the chords"
    if input.suffix.lower() in MIDI_SUFFIXES:
        if not input.is_file():
            raise MusicgenError(f"MIDI file {input} does not exist")
        c, seconds = score.midi_chroma(input, track)
        return "score", c, seconds, input.name
    wav, sr = read_input(input, output, "silence has no melody to follow", first_seconds=duration)
    return "audio", (wav, sr), wav.shape[1] / sr, input.name
