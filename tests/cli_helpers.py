"""Running the `musicgen` entry point in tests: in-process, and as a real process interrupted with Ctrl-C."""

import os
import signal
import subprocess
import sys
import time

import pytest

from musicgen_cli.cli import main


def run_main(args, capsys):
    """Run the entry point in-process: (exit code, stderr lines)."""
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    return exit_info.value.code, capsys.readouterr().err.strip().splitlines()


def run_and_interrupt(args, signum=signal.SIGINT) -> tuple[int, str]:
    """Start `python -m musicgen_cli ARGS`, send `signum` once generation has begun: (exit code, stderr)."""
    cmd = [sys.executable, "-m", "musicgen_cli", *map(str, args)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "COLUMNS": "100"})
    for line in proc.stderr:  # wait until the model is loaded and generation starts
        if "audio from" in line:
            break
    time.sleep(1.0)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=120)
    return proc.returncode, stderr
