"""A stand-in for the `sounddevice` package in tests (put its folder first on PYTHONPATH).

FAKE_SOUNDDEVICE chooses what it pretends: "ok" (a default output device that records what it is
given), "no-device" (PortAudio without an output device), "no-portaudio" (sounddevice installed,
the PortAudio library missing: the real module's OSError), "missing" (not installed at all).
"ok" writes every block an OutputStream is given, as float32, to the file FAKE_SOUNDDEVICE_OUT,
and what the stream was opened with and how it ended to FAKE_SOUNDDEVICE_OUT + ".json".
"""

import json
import os

import numpy as np

MODE = os.environ.get("FAKE_SOUNDDEVICE", "ok")
if MODE == "missing":
    raise ImportError("No module named 'sounddevice'")
if MODE == "no-portaudio":
    raise OSError("PortAudio library not found")


class PortAudioError(Exception):
    pass


def query_devices(device=None, kind=None):
    if MODE == "no-device":
        raise PortAudioError("Error querying device -1")
    return {"name": "fake output", "max_output_channels": 2, "default_samplerate": 48000.0}


class OutputStream:
    def __init__(self, samplerate=None, channels=None, dtype=None, **kw):
        query_devices(kind="output")
        self.out = os.environ["FAKE_SOUNDDEVICE_OUT"]
        self.info = {"samplerate": samplerate, "channels": channels, "dtype": dtype, "started": False, "ended": None}
        open(self.out, "wb").close()
        self._save()

    def _save(self):
        with open(self.out + ".json", "w") as f:
            json.dump(self.info, f)

    def start(self):
        self.info["started"] = True
        self._save()

    def write(self, data):
        assert self.info["started"], "write before start"
        data = np.asarray(data)
        assert data.dtype == np.float32 and data.ndim == 2 and data.shape[1] == self.info["channels"], data.shape
        with open(self.out, "ab") as f:
            f.write(data.tobytes())
        return False  # no underflow

    def stop(self):
        self.info["ended"] = "stop"
        self._save()

    def abort(self):
        self.info["ended"] = "abort"
        self._save()

    def close(self):
        self.info["closed"] = True
        self._save()
