"""What was played, frame by frame: the composer's notes as targets for the codec's score loss.

The dataset stores seeds, and ``compose(seed, seconds)`` gives the same notes again, so nothing more has
to be written to disk. ``roll(piece, frames)`` is [frames, 14] float32 at the codec's 50 frames/s: columns
0-11 are the pitch classes sounding (C = 0; drums excluded), 12 is a pitched-note onset, 13 a drum onset.
Frame t is centred on sample t * hop (the codec's centred STFT frames) and spans +-half a frame.
"""

from __future__ import annotations

import numpy as np

from .compose import DRUM_CHANNEL, Piece, compose

FRAME_RATE = 50.0
COLUMNS = 14
PITCHED_ONSET, DRUM_ONSET = 12, 13


def roll(piece: Piece, frames: int | None = None, frame_rate: float = FRAME_RATE) -> np.ndarray:
    frames = int(round(piece.seconds * frame_rate)) if frames is None else frames
    out = np.zeros((frames, COLUMNS), np.float32)
    for n in piece.notes:
        first = int(np.floor(n.start * frame_rate + 0.5))  # the frame whose span holds the start
        if first >= frames:
            continue
        if n.channel == DRUM_CHANNEL:
            out[first, DRUM_ONSET] = 1.0
            continue
        last = int(np.floor((n.start + n.duration) * frame_rate + 0.5))
        out[first : min(max(last, first + 1), frames), n.pitch % 12] = 1.0
        out[first, PITCHED_ONSET] = 1.0
    return out


def roll_of_seed(seed: int, seconds: float, frames: int | None = None) -> np.ndarray:
    return roll(compose(seed, seconds), frames)
