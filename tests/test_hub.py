"""Models fetched when asked, from a local stand-in for the hub (tests/hub_server.py): download,
resume, unknown ids, a cut connection, no server at all. Nothing here touches the internet."""

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from hub_server import HubServer

REPO = "someone/tiny-musicgen"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def musicgen(args, home: Path, endpoint: str, offline: bool = False):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_HOME=str(home), HF_ENDPOINT=endpoint, HF_HUB_DISABLE_TELEMETRY="1")
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    done = subprocess.run([sys.executable, "-m", "musicgen_cli", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=300)
    return done.returncode, done.stdout.strip(), done.stderr.strip().splitlines()


@pytest.fixture
def hub(mono_ckpt, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(mono_ckpt, repo)
    (repo / "pytorch_model.bin").write_bytes(b"a pickled copy that must not be fetched")
    (repo / "README.md").write_text("not read")
    server = HubServer({REPO: repo})
    yield server
    server.close()


def snapshot_files(home: Path) -> list[str]:
    snaps = list((home / "hub").glob("models--someone--tiny-musicgen/snapshots/*"))
    return sorted(f.name for f in snaps[0].iterdir()) if snaps else []


def test_download_fetches_only_what_is_read_then_runs_offline(hub, mono_ckpt, tmp_path):
    home = tmp_path / "hf"
    code, out, err = musicgen(["download", REPO], home, hub.url)
    assert code == 0, err
    files = snapshot_files(home)
    assert "model.safetensors" in files and "config.json" in files and "tokenizer.json" in files
    assert "pytorch_model.bin" not in files and "README.md" not in files
    assert Path(out).is_dir() and (Path(out) / "model.safetensors").read_bytes() == (mono_ckpt / "model.safetensors").read_bytes()
    # cached: generating needs no server at all
    code, _, err = musicgen(["generate", "x", "-m", REPO, "-d", "0.5", "-o", tmp_path / "a.wav", "--offline"],
                            home, f"http://127.0.0.1:{closed_port()}")
    assert code == 0, err
    assert (tmp_path / "a.wav").stat().st_size > 0


def test_a_dropped_connection_is_retried_in_the_same_run(hub, tmp_path):
    size = (hub.repos[REPO] / "model.safetensors").stat().st_size
    hub.cut["model.safetensors"] = [size // 2]  # the connection drops once, half way
    code, out, err = musicgen(["download", REPO], tmp_path / "hf", hub.url)
    assert code == 0, err
    assert (Path(out) / "model.safetensors").read_bytes() == (hub.repos[REPO] / "model.safetensors").read_bytes()


def test_a_download_that_keeps_failing_leaves_no_half_file(hub, tmp_path):
    home = tmp_path / "hf"
    size = (hub.repos[REPO] / "model.safetensors").stat().st_size
    hub.cut["model.safetensors"] = [size // 2] * 50  # every attempt drops half way
    code, _, err = musicgen(["download", REPO], home, hub.url)
    assert code == 1 and "run the command again" in err[-1], err
    assert "model.safetensors" not in snapshot_files(home)  # nothing half-written where it would be read
    assert not [p for p in home.rglob("*") if p.is_file() and p.stat().st_size == size // 2]
    hub.cut.clear()
    code, out, err = musicgen(["download", REPO], home, hub.url)  # the next run completes it
    assert code == 0, err
    assert (Path(out) / "model.safetensors").stat().st_size == size


def test_unknown_ids_and_near_misses_are_one_line(hub, tmp_path):
    home = tmp_path / "hf"
    code, _, err = musicgen(["download", "someone/tiny-musicgenn"], home, hub.url)
    assert code == 1 and "no model 'someone/tiny-musicgenn' on the Hugging Face hub" in err[-1], err
    code, _, err = musicgen(["download", "facebook/musicgen-smal"], home, hub.url)
    assert code == 1 and "did you mean facebook/musicgen-small?" in err[-1], err
    code, _, err = musicgen(["generate", "x", "-m", "smal", "-o", tmp_path / "x.wav"], home, hub.url)
    assert code == 1 and err == ["musicgen: error: model 'smal' is not a known name, a hub id or a folder "
                                 "(did you mean small?)"], err


def test_offline_never_touches_the_network(hub, tmp_path):
    code, _, err = musicgen(["download", REPO], tmp_path / "hf", hub.url, offline=True)
    assert code == 1 and "offline mode" in err[-1], err
    assert hub.requests == []


def test_no_server_default_falls_back_to_bundled_within_a_second(tmp_path):
    code, out, err = musicgen(["generate", "x", "-d", "0.5", "-o", tmp_path / "x.wav"], tmp_path / "hf",
                              f"http://127.0.0.1:{closed_port()}")
    assert code == 0, err
    assert any(line.startswith("note: using the bundled model: small is not cached and the hub cannot be reached")
               for line in err), err
    probe = ("import time; from musicgen_cli import checkpoints; t = time.perf_counter(); "
             "name, folder, note = checkpoints.resolve(None); print(name, time.perf_counter() - t)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_HOME=str(tmp_path / "hf"), HF_ENDPOINT=f"http://127.0.0.1:{closed_port()}")
    name, seconds = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env,
                                   check=True).stdout.split()
    assert name == "bundled" and float(seconds) < 1.0


def test_models_lists_known_cached_and_bundled(hub, tmp_path):
    home = tmp_path / "hf"
    code, out, err = musicgen(["models"], home, hub.url, offline=True)
    assert code == 0, err
    lines = out.splitlines()
    assert any(line.startswith("small ") and "facebook/musicgen-small" in line and line.endswith(" no")
               for line in lines), out
    assert any(line.startswith("stereo-melody-large ") and "stereo" in line for line in lines), out
    assert lines[-1].startswith("bundled ")
