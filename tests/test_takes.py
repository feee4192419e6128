"""Takes: made again from their sidecar, sample for sample; varied in one setting; carried on."""

import json
import os
import subprocess
import sys

import numpy as np
import soundfile as sf

OFFLINE = {**os.environ, "HF_HUB_OFFLINE": "1"}


def run(*args, cwd):
    return subprocess.run([sys.executable, "-m", "musicgen_cli", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, env=OFFLINE, timeout=300)


def test_a_take_made_again_is_the_same_and_varies_only_what_is_asked(tmp_path):
    r = run("generate", "calm piano", "rock band", "-d", "2", "--seed", "5", "--top-k", "100", "-o", "take.wav",
            cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    first, second = sf.read(tmp_path / "take-1.wav")[0], sf.read(tmp_path / "take-2.wav")[0]

    r = run("generate", "--again", "take-2.wav", cwd=tmp_path)  # the second file: seed 6, made alone now
    assert r.returncode == 0, r.stderr
    assert np.array_equal(sf.read(tmp_path / "take-2-again.wav")[0], second)  # sample for sample
    side = json.loads((tmp_path / "take-2-again.json").read_text())
    assert (side["prompt"], side["seed"], side["top_k"]) == ("rock band", 6, 100)

    r = run("generate", "--again", "take-1.json", "--seed", "6", "-o", "reseeded.wav", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    reseeded = sf.read(tmp_path / "reseeded.wav")[0]
    assert reseeded.shape == first.shape and not np.array_equal(reseeded, first)
    assert json.loads((tmp_path / "reseeded.json").read_text())["seed"] == 6

    r = run("generate", "--again", "take-1.wav", "--duration", "3", "-o", "longer.wav", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    side = json.loads((tmp_path / "longer.json").read_text())
    assert sf.info(tmp_path / "longer.wav").frames == 3 * 32000 and (side["seed"], side["top_k"]) == (5, 100)


def test_variations_are_distinct_takes_each_its_own_seed_alone(tmp_path):
    """--seed 5 --variations 3: the files of seeds 5, 6 and 7, each the same as that seed alone."""
    r = run("generate", "surf rock", "--variations", "3", "-d", "1", "--seed", "5", "-o", "surf.wav", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    takes = [sf.read(tmp_path / f"surf-{i}.wav")[0] for i in (1, 2, 3)]
    assert not np.array_equal(takes[0], takes[1]) and not np.array_equal(takes[1], takes[2])
    sides = [json.loads((tmp_path / f"surf-{i}.json").read_text()) for i in (1, 2, 3)]
    assert [s["seed"] for s in sides] == [5, 6, 7] and {s["prompt"] for s in sides} == {"surf rock"}
    r = run("generate", "surf rock", "-d", "1", "--seed", "6", "-o", "alone.wav", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "alone.wav").read_bytes() == (tmp_path / "surf-2.wav").read_bytes()
    r = run("generate", "--again", "surf-3.wav", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert np.array_equal(sf.read(tmp_path / "surf-3-again.wav")[0], takes[2])


def test_continue_carries_a_take_on_in_its_own_voice(tmp_path):
    r = run("generate", "slow blues", "-d", "2", "--seed", "2", "--top-k", "50", "--cfg", "2.5", "-o", "blues.wav",
            cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = run("continue", "blues.wav", "--duration", "3", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    side = json.loads((tmp_path / "blues-continued.json").read_text())
    assert (side["prompt"], side["top_k"], side["cfg"], side["model"]) == ("slow blues", 50, 2.5, "bundled")
    r = run("continue", "blues.wav", "--duration", "3", "--top-k", "20", "-p", "faster", "-o", "mine.wav", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    side = json.loads((tmp_path / "mine.json").read_text())
    assert (side["prompt"], side["top_k"], side["cfg"]) == ("faster", 20, 2.5)  # what is given wins


def test_takes_that_cannot_be_made_again_are_one_line(tmp_path):
    sf.write(tmp_path / "plain.wav", np.zeros(3200, dtype=np.float32), 32000)
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "gone.json").write_text(json.dumps({"model": "/no/such/model", "seed": 1, "musicgen_version": "0.1.0",
                                                    "prompt": "x", "duration": 1.0}))
    for take, message in [("plain.wav", "has no sidecar"), ("broken.json", "not a musicgen sidecar"),
                          ("gone.json", "does not exist")]:
        r = run("generate", "--again", take, cwd=tmp_path)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 1 and len(lines) == 1 and message in lines[0], (take, r.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.json", "gone.json", "plain.wav"]
