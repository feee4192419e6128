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
}


@pytest.mark.parametrize("case", CASES)
def test_malformed_config_is_one_line(mono_ckpt, tmp_path, capsys, case):
    change, message = CASES[case]
    folder = tmp_path / "ckpt"
    shutil.copytree(mono_ckpt, folder)
    edit_config(folder, change)
    code, lines = run_main(["generate", "x", "-m", folder, "-d", "0.5", "-o", tmp_path / "a.wav"], capsys)
    assert code == 1 and len(lines) == 1 and message in lines[0], lines


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
