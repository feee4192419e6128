"""`musicgen batch --ray`: a local Ray cluster of two CPU workers, started once for the module. The
same bytes as without Ray; a worker killed mid-job: its batch made by the other, each item written
exactly once; without Ray installed, one line saying how to get it."""

import collections
import os
import subprocess
import sys

import pytest
from cli_helpers import run_main

ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install -e '.[test]')")

PROMPTS = ["calm piano", "rock band with brass", "x", "slow blues in e", "calm piano", "metal riff", "folk"]


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, namespace="musicgen-tests")
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    path = tmp_path_factory.mktemp("prompts") / "p.txt"
    path.write_text("\n".join(PROMPTS) + "\n")
    return path


@pytest.fixture(scope="module")
def here(mono_ckpt, source, tmp_path_factory):
    """The job made in this process, without Ray."""
    out = tmp_path_factory.mktemp("here") / "clips"
    done = subprocess.run([sys.executable, "-m", "musicgen_cli", "batch", source, "--out", out, "-m", mono_ckpt,
                           "-d", "1", "--batch-size", "2"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return out


def same_files(a, b):
    names = sorted(p.name for p in a.glob("*.wav"))
    assert names == sorted(p.name for p in b.glob("*.wav")) and len(names) == len(PROMPTS)
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert (a / "metadata.jsonl").read_text() == (b / "metadata.jsonl").read_text()


def test_the_same_bytes_with_and_without_ray(cluster, here, mono_ckpt, source, tmp_path, capsys):
    out = tmp_path / "clips"
    code, lines = run_main(["batch", source, "--out", out, "-m", mono_ckpt, "-d", "1", "--batch-size", "2",
                            "--ray", "local", "--workers", "2"], capsys)
    assert code in (0, None), lines
    assert any("on Ray (local)" in line for line in lines)
    same_files(out, here)


def test_a_worker_killed_mid_job_its_batch_goes_to_the_other_and_each_item_is_written_once(
        cluster, here, mono_ckpt, source, tmp_path, capsys, monkeypatch):
    from musicgen_cli import audio, batch

    writes = collections.Counter()
    write_audio, deliver = audio.write_audio, batch.Job.deliver

    def counted(path, *args, **kwargs):
        writes[path.name] += 1
        return write_audio(path, *args, **kwargs)

    def deliver_then_kill(job, results, names):  # after the first batch: a worker dies, busy or next to be
        deliver(job, results, names)
        if sum(writes.values()) <= 2:
            ray.kill(ray.get_actor("musicgen-batch-1"))

    monkeypatch.setattr(audio, "write_audio", counted)
    monkeypatch.setattr(batch.Job, "deliver", deliver_then_kill)
    out = tmp_path / "clips"
    code, lines = run_main(["batch", source, "--out", out, "-m", mono_ckpt, "-d", "1", "--batch-size", "2",
                            "--ray", "local", "--workers", "2"], capsys)
    assert code in (0, None), lines
    assert "1 batch(es) retried after a worker died" in lines[-1], lines
    assert sorted(writes) == sorted(p.name for p in here.glob("*.wav")) and set(writes.values()) == {1}, writes
    same_files(out, here)


def test_without_ray_one_line_says_how_to_get_it(tmp_path):
    (tmp_path / "ray.py").write_text("raise ImportError('No module named ray')\n")  # as if not installed
    (tmp_path / "p.txt").write_text("calm piano\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "musicgen_cli", "batch", "p.txt", "--out", "clips", "--ray", "local"],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "musicgen: error: --ray needs Ray: pip install 'musicgen-cli[ray]' (or pip install ray)"]
    assert not (tmp_path / "clips").exists()
