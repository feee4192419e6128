"""Item 10 of issue 16: malformed checkpoints are one line each (exit 1), never a traceback, and an
index never points outside the model folder. Ends with a bounded fuzz of config values."""

import json
import random
import shutil

import pytest
from cli_helpers import run_main

from musicgen_cli import checkpoints
from musicgen_cli.errors import MusicgenError


def edit_config(folder, change, name="config.json"):
    path = folder / name
    config = json.loads(path.read_text()) if path.exists() else {}
    config = change(config)
    path.write_text(json.dumps(config))


def decoder(**values):
    def change(config):
        config["decoder"].update(values)
        return config
    return change


def part(name, **values):
    def change(config):
        config[name].update(values)
        return config
    return change


def drop(part, key):
    def change(config):
        del config[part][key]
        return config
    return change


def shard_index(target):
    def change(_):
        return {"metadata": {}, "weight_map": {"decoder.lm_heads.0.weight": target}}
    return change


CASES = {
    "list": (lambda c: [c], "not an object"),
    "zero heads": (decoder(num_attention_heads=0), "num_attention_heads"),
    "indivisible heads": (decoder(num_attention_heads=7), "not divisible"),
    "missing vocab": (drop("decoder", "vocab_size"), "vocab_size"),
    "string size": (decoder(hidden_size="abc"), "hidden_size"),
    "60 GB decoder": (decoder(num_hidden_layers=4096, hidden_size=8192, ffn_dim=32768, num_attention_heads=64), "GiB"),
    "text encoder key": (drop("text_encoder", "d_model"), "text encoder"),
    "codec key": (drop("audio_encoder", "upsampling_ratios"), "codec"),
    "text encoder shape": (lambda c: {**c, "text_encoder": {**c["text_encoder"], "d_ff": 7}}, "text encoder"),
    "no codec": (lambda c: {k: v for k, v in c.items() if k != "audio_encoder"}, "no audio_encoder"),
    "60 GB codec": (part("audio_encoder", num_filters=1024, hidden_size=4096, codebook_dim=4096), "GiB (at most 4)"),
    "60 GB text encoder": (part("text_encoder", num_layers=256, d_model=16384, d_ff=160000, d_kv=64, num_heads=256),
                           "GiB (at most 32)"),
    "a million codec strides": (part("audio_encoder", upsampling_ratios=[1] * 10**6), "upsampling_ratios"),
    "text encoder layers": (part("text_encoder", num_layers=10**6), "num_layers"),
}


@pytest.mark.parametrize("case", CASES)
def test_malformed_config_is_one_line(mono_ckpt, tmp_path, capsys, monkeypatch, case):
    """Each refused from config.json alone: before any weight is read or anything is built."""
    change, message = CASES[case]
    folder = tmp_path / "ckpt"
    shutil.copytree(mono_ckpt, folder)
    edit_config(folder, change)
    if case.startswith(("60 GB", "a million", "text encoder layers", "no codec")):
        monkeypatch.setattr(checkpoints, "_read_weights", lambda *a: pytest.fail("weights were read"))
    code, lines = run_main(["generate", "x", "-m", folder, "-d", "0.5", "-o", tmp_path / "a.wav"], capsys)
    assert code == 1 and len(lines) == 1 and message in lines[0], lines


def test_a_huge_bundled_codec_v2_config_is_refused_before_allocating():
    """The bundled model's next codec (codec_v2.py) is built from its config.json: a config asking
    for 72 GiB of weights (or values of the wrong type) is one line each. Run in a process limited to
    3 GB of address space, so that a build that allocates fails there instead of filling the machine."""
    import resource
    import subprocess
    import sys

    script = """
import json, sys
from musicgen_cli.codec_v2 import BundledCodec
from musicgen_cli.errors import MusicgenError
for config in json.loads(sys.argv[1]):
    try:
        BundledCodec.from_state(config, {})
    except MusicgenError as e:
        print(e)
"""
    cases = [({"model_type": "musicgen_codec_v2", "dim": 1 << 14, "dec_blocks": 8}, "of 72 GiB (at most 4)"),
             ({"dim": "256"}, "dim must be a whole number"),
             ({"enc_ffts": [4096] * 1000}, "enc_ffts must be a list of 1 to 4"),
             ({"model_type": "encodec"}, "not a musicgen_codec_v2"),
             ([], "not an object")]
    limit = lambda: resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))  # noqa: E731
    done = subprocess.run([sys.executable, "-c", script, json.dumps([c for c, _ in cases])], capture_output=True,
                          text=True, timeout=120, preexec_fn=limit)
    lines = done.stdout.splitlines()
    assert done.returncode == 0 and len(lines) == len(cases), done.stderr[-2000:]
    for line, (_, message) in zip(lines, cases):
        assert message in line, line


@pytest.mark.parametrize("max_length", ["abc", -5, [1]])
def test_bad_max_length_is_one_line(mono_ckpt, tmp_path, capsys, max_length):
    folder = tmp_path / "ckpt"
    shutil.copytree(mono_ckpt, folder)
    edit_config(folder, lambda c: {**c, "max_length": max_length}, "generation_config.json")
    code, lines = run_main(["generate", "x", "-m", folder, "-d", "0.5", "-o", tmp_path / "a.wav"], capsys)
    assert code == 1 and len(lines) == 1 and "max_length" in lines[0], lines


@pytest.mark.parametrize("target, message", [("../outside.safetensors", "outside the model folder"),
                                             ("/etc/passwd", "outside the model folder"),
                                             (None, "not a valid weights index")])
def test_index_stays_inside_the_folder(mono_ckpt, tmp_path, target, message):
    folder = tmp_path / "ckpt"
    shutil.copytree(mono_ckpt, folder)
    shutil.move(folder / "model.safetensors", tmp_path / "outside.safetensors")
    index = folder / "model.safetensors.index.json"
    index.write_text("{not json" if target is None else json.dumps(shard_index(target)(None)))
    with pytest.raises(MusicgenError, match=message):
        checkpoints.load(str(folder))


def test_fuzzed_config_values_never_traceback(mono_ckpt, tmp_path):
    """A bounded fuzz: 60 configs with one value replaced by something of another type or range."""
    rng = random.Random(16)
    original = json.loads((mono_ckpt / "config.json").read_text())
    values = [None, -1, 0, 10**12, 2.5, "abc", [], {}, True, float("nan")]
    paths = [(part, key) for part in ("decoder", "text_encoder", "audio_encoder") for key in original[part]]
    folder = tmp_path / "ckpt"
    shutil.copytree(mono_ckpt, folder)
    for _ in range(60):
        part, key = rng.choice(paths)
        config = json.loads(json.dumps(original))
        config[part][key] = rng.choice(values)
        (folder / "config.json").write_text(json.dumps(config))
        try:
            checkpoints.load(str(folder))
        except MusicgenError:
            pass


@pytest.mark.parametrize("xp_cfg,message", [
    ("transformer_lm: !!python/object/apply:os.system ['true']", "not plain YAML"),
    ("dataset: {segment_duration: 30}", "no transformer_lm section"),
    ("transformer_lm: {dim: 64, num_layers: 2, num_heads: 5, n_q: 4, card: 2048}", "not divisible"),
    ("transformer_lm: {dim: 65536, num_layers: 4800, num_heads: 8, n_q: 4, card: 2048}", "refusing to build it"),
])
def test_audiocraft_configs_are_checked_before_anything_is_built(tmp_path, xp_cfg, message):
    """Item 10: an audiocraft state_dict.bin whose xp.cfg holds a python tag, lacks transformer_lm,
    or describes an impossible or enormous decoder: one line, nothing run, nothing built."""
    import torch

    torch.save({"best_state": {}, "xp.cfg": xp_cfg}, tmp_path / "state_dict.bin")
    with pytest.raises(MusicgenError, match=message):
        checkpoints.load(str(tmp_path))
