"""The one exception type the command line turns into a single clear line on stderr, and its
warnings, one line each."""

import sys


class MusicgenError(Exception):
    """A problem with the user's input or environment, worded for the user (one line)."""


class ModelProducedNaN(MusicgenError):
    """The network's logits were NaN or infinite at a decode step (damaged weights, overflow)."""

    def __init__(self, step: int):
        super().__init__(f"the model produced NaN at step {step} (its logits are not finite; "
                         "are the checkpoint's weights damaged?)")
        self.step = step


def warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    """warnings.showwarning for the command line: "musicgen: warning: MESSAGE", one line on stderr
    (Python's own shows the file, line and source line of the call)."""
    print(f"musicgen: warning: {' '.join(str(message).split())}", file=file or sys.stderr)
