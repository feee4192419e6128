"""Ctrl-C and SIGTERM: both stop a run the same way (temp files removed on the way out), and the
last line says what was written before. Standard library only."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

WRITTEN: list[Path] = []  # the files this run has written so far
SIGNALLED: list[int] = []  # SIGTERM received (typer may turn the exception into exit code 130)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, like Ctrl-C's KeyboardInterrupt."""


def _terminate(signum, frame):
    SIGNALLED.append(signum)
    raise Terminated()


def start():
    """At the start of a command: nothing written yet; SIGTERM handled like Ctrl-C. Returns the
    handler it replaced (for `stop`)."""
    WRITTEN.clear()
    SIGNALLED.clear()
    if threading.current_thread() is threading.main_thread():
        return signal.signal(signal.SIGTERM, _terminate)
    return None


def stop(previous) -> None:
    """Put back the SIGTERM handler `start` replaced (main() may run inside another program)."""
    if previous is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, previous)


def exit_code() -> int:
    return 128 + signal.SIGTERM if SIGNALLED else 130


def last_line() -> str:
    how = "terminated" if SIGNALLED else "interrupted"
    if not WRITTEN:
        return f"musicgen: {how}; no output file was left behind"
    names = ", ".join(str(p) for p in WRITTEN[:3]) + (f" and {len(WRITTEN) - 3} more" if len(WRITTEN) > 3 else "")
    return (f"musicgen: {how} after writing {len(WRITTEN)} file(s), each with its sidecar: {names}; "
            "nothing else was left behind")
