"""The bundled default model: in the package, loaded with no --model and no network, all three commands."""

import json
import os
import subprocess
import sys

import numpy as np
import soundfile as sf

from musicgen_cli import registry
from musicgen_cli.api import MusicGen

OFFLINE = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_CACHE": "/nonexistent"}


def musicgen(*args, cwd):
    return subprocess.run([sys.executable, "-m", "musicgen_cli", *map(str, args)], cwd=cwd, env=OFFLINE,
                          capture_output=True, text=True, timeout=300)


def test_the_bundled_model_is_a_small_melody_capable_hf_folder():
    folder = registry.BUNDLED_FOLDER
    size = sum(p.stat().st_size for p in folder.iterdir())
    assert size < 60e6, size
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "musicgen_melody"
    mg = MusicGen.load()  # the default
    assert mg.folder == folder and mg.melody and mg.sample_rate == 32000 and mg.max_duration == 10.0


def test_generate_melody_and_continue_work_offline_with_no_model_option(tmp_path):
    r = musicgen("generate", "a relaxed lo-fi hip hop beat", "-d", "2", "-o", "beat.wav", "--seed", "1", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    audio, sr = sf.read(tmp_path / "beat.wav")
    assert sr == 32000 and audio.shape == (64000,) and np.abs(audio).max() > 0.01
    assert json.loads((tmp_path / "beat.json").read_text())["model"] == "bundled"

    t = np.arange(3 * 32000) / 32000
    hum = 0.3 * np.sin(2 * np.pi * 220 * 2 ** (np.floor(t * 2) % 5 / 12) * t)
    sf.write(tmp_path / "hum.wav", hum.astype(np.float32), 32000)
    r = musicgen("melody", "hum.wav", "--style", "orchestral", "-d", "2", "--seed", "1", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert sf.info(tmp_path / "hum-orchestral.wav").frames == 64000

    r = musicgen("continue", "beat.wav", "--duration", "3", "--prompt-seconds", "1", "--seed", "1", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out, _ = sf.read(tmp_path / "beat-continued.wav")
    assert out.shape == (96000,)


def test_the_readme_commands_with_default_options(tmp_path):
    """The README's three commands exactly as written, nothing else set: offline, the default model
    falls back to the bundled one (with a note); the outputs have no DC offset and no edge clicks."""
    r = musicgen("generate", "lo-fi jazz", "--duration", "30", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "note: using the bundled model" in r.stderr
    jazz, sr = sf.read(tmp_path / "lo-fi-jazz.wav")
    assert jazz.shape == (30 * 32000,)
    assert abs(jazz.mean()) < 0.01 * np.sqrt(np.mean(jazz ** 2)), jazz.mean()  # no DC offset
    edge = np.abs(jazz).max() / 161 + 1 / 32768  # the 5 ms fades' first and last gains are 1/161
    assert abs(jazz[0]) <= edge and abs(jazz[-1]) <= edge, (jazz[0], jazz[-1], edge)  # no click at either end

    r = musicgen("continue", "lo-fi-jazz.wav", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out, _ = sf.read(tmp_path / "lo-fi-jazz-continued.wav")
    assert out.shape == (40 * 32000,)
    np.testing.assert_allclose(out[: 29 * 32000], jazz[: 29 * 32000], atol=1e-4)  # the input, unchanged

    t = np.arange(4 * 32000) / 32000
    hum = 0.3 * np.sin(2 * np.pi * 220 * 2 ** (np.floor(t * 2) % 5 / 12) * t)
    sf.write(tmp_path / "hum.wav", hum.astype(np.float32), 32000)
    r = musicgen("melody", "hum.wav", "--style", "orchestral", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert sf.info(tmp_path / "hum-orchestral.wav").frames == 4 * 32000
