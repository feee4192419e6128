"""Render a composed :class:`Piece` to audio with FluidSynth and a General MIDI soundfont.

Every render starts a fresh synthesiser (0.2 s to load the soundfont): a reused one carries state from
piece to piece (chorus, reverb) even after silence, and then a piece's samples depend on what was rendered
before it. The soundfont comes from Debian's ``fluid-soundfont-gm`` (FluidR3_GM,
MIT licence), installed by ``scripts/install-soundfont``; nothing of it is committed.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .compose import DRUM_CHANNEL, Piece

SOUNDFONT_PATHS = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
)
GAIN = 0.3


def find_soundfont() -> Path:
    """The GM soundfont: $MUSICGEN_SOUNDFONT, else the Debian locations."""
    paths = [os.environ["MUSICGEN_SOUNDFONT"]] if os.environ.get("MUSICGEN_SOUNDFONT") else list(SOUNDFONT_PATHS)
    for p in paths:
        if Path(p).is_file():
            return Path(p)
    raise FileNotFoundError("no General MIDI soundfont found; run scripts/install-soundfont "
                            "(Debian: fluid-soundfont-gm) or set MUSICGEN_SOUNDFONT")


class Renderer:
    """``Renderer(sample_rate).render(piece, channels=None)`` -> mono float32 in [-1, 1]."""

    def __init__(self, sample_rate: int = 32000, soundfont: str | Path | None = None):
        import fluidsynth  # pyfluidsynth; imported here so the rest of the package works without it

        self.sample_rate = sample_rate
        self.soundfont = str(soundfont or find_soundfont())
        self._new_synth = lambda: fluidsynth.Synth(gain=GAIN, samplerate=float(sample_rate))

    def render(self, piece: Piece, channels: set[int] | None = None) -> np.ndarray:
        """The piece (only ``channels`` when given), exactly ``piece.seconds`` long, mono."""
        s = self._new_synth()
        try:
            return self._render(s, piece, channels)
        finally:
            s.delete()

    def _render(self, s, piece: Piece, channels: set[int] | None) -> np.ndarray:
        sfid = s.sfload(self.soundfont)
        if sfid < 0:
            raise RuntimeError(f"FluidSynth could not load {self.soundfont}")
        for ch, program in piece.programs.items():
            s.program_select(ch, sfid, 0, program)
        s.program_select(DRUM_CHANNEL, sfid, 128, 0)
        events = []  # (sample, order, on, note): note-offs sort before note-ons at the same sample
        for n in piece.notes:
            if channels is not None and n.channel not in channels:
                continue
            events.append((round(n.start * self.sample_rate), 1, True, n))
            events.append((round((n.start + n.duration) * self.sample_rate), 0, False, n))
        events.sort(key=lambda e: (e[0], e[1]))
        total = round(piece.seconds * self.sample_rate)
        blocks, pos = [], 0
        for at, _, on, n in events:
            at = min(at, total)
            if at > pos:
                blocks.append(s.get_samples(at - pos))
                pos = at
            if on:
                s.noteon(n.channel, n.pitch, n.velocity)
            else:
                s.noteoff(n.channel, n.pitch)
        if total > pos:
            blocks.append(s.get_samples(total - pos))
        stereo = np.concatenate(blocks).astype(np.float32).reshape(-1, 2) / 32768.0
        return np.clip(stereo.mean(axis=1), -1.0, 1.0)
