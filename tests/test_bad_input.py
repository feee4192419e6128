"""Tracebacks where one line is promised (issue 16, items 3, 9, 11, 12): a model that produces NaN,
out-of-range arguments, misleading messages. Each is one line, exit code 1, nothing written."""

import json
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch
from cli_helpers import run_main
from safetensors.torch import load_file, save_file

from musicgen_cli.native import cpu


@pytest.fixture(scope="module")
def nan_ckpt(mono_ckpt, tmp_path_factory):
    """The tiny checkpoint with NaN output heads: every logit is NaN."""
    folder = tmp_path_factory.mktemp("nan") / "ckpt"
    shutil.copytree(mono_ckpt, folder)
    weights = load_file(folder / "model.safetensors")
    for name in weights:
        if "lm_heads" in name:
            weights[name] = torch.full_like(weights[name], float("nan"))
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    return folder


@pytest.mark.parametrize("backend", [["--backend", "torch"], ["--backend", "cpu", "--dtype", "float32"],
                                     ["--backend", "cpu", "--dtype", "int8"], ["--backend", "cpu", "--top-k", "1"]])
def test_nan_logits_stop_with_one_line(nan_ckpt, tmp_path, capsys, backend):
    """Item 3: the C++ sampler read past its kept tokens and wrote audio; the torch path tracebacked."""
    if backend[1] == "cpu" and cpu.library() is None:
        pytest.skip("no CPU kernels here")
    code, lines = run_main(["generate", "x", "-m", nan_ckpt, "-d", "0.5", "-o", tmp_path / "a.wav", *backend], capsys)
    assert code == 1, lines
    assert lines[-1].startswith("musicgen: error: the model produced NaN at step 1"), lines
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("extra, message", [
    (["--seed", "18446744073709551616"], "--seed"),
    (["--seed", "-1"], "--seed"),
    (["--device", "tpu"], "--device"),
    (["--cfg", "inf"], "cfg"),
    (["--cfg", "nan"], "cfg"),
    (["--temperature", "inf"], "temperature"),
    (["--stride", "0.001"], "stride"),
    (["--stride", "nan"], "stride"),
    (["-d", "3601"], "at most 3600 s"),
])
def test_arguments_are_range_checked_before_loading(tmp_path, capsys, extra, message):
    """Item 11: refused before any model loads (the model named here does not exist)."""
    code, lines = run_main(["generate", "x", "-m", tmp_path / "no-model", "-o", tmp_path / "a.wav", *extra], capsys)
    assert code == 1 and len(lines) == 1 and message in lines[0] and "does not exist" not in lines[0], lines


def test_huge_top_k_means_off_not_a_truncated_number(mono_ckpt, tmp_path, capsys):
    """Item 11: --top-k past a C int reached C++ truncated (2**32 + 5 as 5); it now means "no top-k", as in PyTorch."""
    if cpu.library() is None:
        pytest.skip("no CPU kernels here")
    outs = []
    for k in ("4294967301", "0"):
        out = tmp_path / f"k{k[:2]}.wav"
        code, lines = run_main(["generate", "x", "-m", mono_ckpt, "-d", "0.5", "--seed", "3", "--top-k", k,
                                "--backend", "cpu", "--dtype", "float32", "-o", out], capsys)
        assert code in (0, None), lines
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]


def test_messages_say_what_is_wrong(capsys, tmp_path):
    """Item 12: no "3600 s is too long (at most 3600 s)"."""
    code, lines = run_main(["generate", "x", "-m", tmp_path / "none", "-d", "3600.0001", "-o", tmp_path / "a.wav"], capsys)
    assert code == 1 and "3600.0001 s is too long (at most 3600 s)" in lines[0], lines


def test_kernel_cache_follows_xdg_cache_home(monkeypatch, tmp_path):
    """Item 12: XDG_CACHE_HOME is where caches go when set; MUSICGEN_CACHE still wins."""
    monkeypatch.delenv("MUSICGEN_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cpu.cache_dir() == tmp_path / "xdg" / "musicgen" / "kernels"
    monkeypatch.setenv("MUSICGEN_CACHE", str(tmp_path / "mine"))
    assert cpu.cache_dir() == tmp_path / "mine" / "kernels"


def test_a_huge_prompt_is_cut_with_one_line_before_loading(tmp_path, capsys):
    """Item 9: 100,000 characters asked T5 for a 42 GB attention; cut before anything is built
    (the model named here does not exist: the note comes first)."""
    code, lines = run_main(["generate", "jazz " * 20000, "-m", tmp_path / "none", "-o", tmp_path / "a.wav"], capsys)
    assert lines[0].startswith("note: the prompt was 100000 characters") and "cut" in lines[0], lines
    assert code == 1 and "does not exist" in lines[1]


def test_a_cut_prompt_is_what_the_sidecar_records(mono_ckpt, tmp_path, capsys):
    code, lines = run_main(["generate", "lo-fi " * 1000, "-m", mono_ckpt, "-d", "0.5", "-o", tmp_path / "a.wav"], capsys)
    assert code in (0, None) and sum("was cut" in line for line in lines) == 1, lines
    prompt = json.loads((tmp_path / "a.json").read_text())["prompt"]
    assert 1900 < len(prompt) <= 2000 and prompt.startswith("lo-fi lo-fi")


@pytest.fixture
def two_hours(tmp_path):
    """A WAV whose header says 2 hours (at 1 Hz: 14 KB), noise so that it is not silent."""
    path = tmp_path / "2h.wav"
    sf.write(path, np.random.default_rng(0).uniform(-0.5, 0.5, 7200).astype(np.float32), 1, subtype="PCM_16")
    return path


def test_too_long_input_is_refused_from_its_header(two_hours, tmp_path, capsys, monkeypatch):
    """Item 8: a 2-hour input was read whole (5.3 GB) before being refused, and `continue
    --prompt-seconds 2` skipped the check and loaded the model."""
    def no_read(*args, **kwargs):
        raise AssertionError("samples were read")

    monkeypatch.setattr(sf, "read", no_read)
    code, lines = run_main(["melody", two_hours, "-m", tmp_path / "none", "-o", tmp_path / "a.wav"], capsys)
    assert code == 1 and len(lines) == 1 and "lasts 7200 s (from its header)" in lines[0], lines
    # continue writes the input into its output: 2 h + 10 s is too long (--only-new reads only the end)
    code, lines = run_main(["continue", two_hours, "--prompt-seconds", "2", "-m", tmp_path / "none",
                            "-o", tmp_path / "a.wav"], capsys)
    assert code == 1 and len(lines) == 1, lines
    assert lines[0] == ("musicgen: error: the output would last 7210 s, the input's 7200 s included "
                        "(--only-new writes only the new part); at most 3600 s"), lines


def test_melody_reads_only_the_span_it_uses(two_hours, tmp_path, capsys, monkeypatch):
    """Item 8: `melody -d 2` reads 2 s of a long tune, not all of it."""
    read, asked = sf.read, []

    def recording_read(*args, **kwargs):
        asked.append(kwargs.get("frames", -1))
        return read(*args, **kwargs)

    monkeypatch.setattr(sf, "read", recording_read)
    code, lines = run_main(["melody", two_hours, "-d", "2", "-m", tmp_path / "none", "-o", tmp_path / "a.wav"], capsys)
    assert asked == [2] and code == 1 and "does not exist" in lines[-1], (asked, lines)


def test_garbage_tokenizer_is_one_line(mono_ckpt, tmp_path, capsys):
    """Item 12: a garbage spiece.model said "tiktoken is required" after four transformers lines."""
    folder = tmp_path / "ckpt"
    shutil.copytree(mono_ckpt, folder)
    (folder / "tokenizer.json").unlink()
    (folder / "spiece.model").write_bytes(np.random.default_rng(1).bytes(3000))
    code, lines = run_main(["generate", "x", "-m", folder, "-d", "0.5", "-o", tmp_path / "a.wav"], capsys)
    assert code == 1 and len(lines) == 1 and "cannot load the T5 tokenizer" in lines[0], lines
