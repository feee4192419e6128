"""Loading: the audiocraft layout, hub ids through the local cache, and files we must refuse."""

import shutil

import huggingface_hub.constants
import pytest
import torch

from musicgen_cli import MusicGen, MusicgenError, SamplingOptions
from musicgen_cli.cli import main
from tiny_checkpoints import make_audiocraft_checkpoint, make_audiocraft_hub_cache


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory, mono_ckpt):
    root = tmp_path_factory.mktemp("hub")
    make_audiocraft_hub_cache(root / "cache", mono_ckpt, root / "work", repo_id="facebook/musicgen-small")
    return root / "cache"


@pytest.fixture
def offline_cache(hub_cache, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hub_cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return hub_cache


def test_audiocraft_layout_generates_the_same_tokens(mono_ckpt, tmp_path, offline_cache):
    ac = make_audiocraft_checkpoint(mono_ckpt, tmp_path / "ac")
    assert sorted(p.name for p in ac.iterdir()) == ["compression_state_dict.bin", "state_dict.bin"]
    opts = SamplingOptions(top_k=1, cfg=3.0)
    ours = MusicGen.load(str(ac), device="cpu").generate_codes(["jazz", "a longer rock prompt"], 2.0, opts)
    ref = MusicGen.load(str(mono_ckpt), device="cpu").generate_codes(["jazz", "a longer rock prompt"], 2.0, opts)
    assert torch.equal(ours, ref)


def test_hub_id_resolves_from_the_cache_in_the_api_and_the_cli(offline_cache, tmp_path, capsys):
    mg = MusicGen.load("facebook/musicgen-small", device="cpu")
    assert mg.sample_rate == 32000 and mg.channels == 1
    out = tmp_path / "default.wav"
    with pytest.raises(SystemExit) as e:
        main(["generate", "x", "-d", "0.5", "-m", "facebook/musicgen-small", "-o", str(out)])
    assert e.value.code == 0 and out.is_file()


def test_audiocraft_layout_without_its_t5_in_the_cache_says_how_to_get_it(mono_ckpt, tmp_path, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    ac = make_audiocraft_checkpoint(mono_ckpt, tmp_path / "ac")
    with pytest.raises(MusicgenError, match="t5-base"):
        MusicGen.load(str(ac))


class Payload:
    """Unpickling this would create a file: a stand-in for code hidden in a checkpoint."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickled_code_is_refused_not_run(mono_ckpt, tmp_path):
    ac = make_audiocraft_checkpoint(mono_ckpt, tmp_path / "ac")
    marker = tmp_path / "pwned"
    package = torch.load(ac / "state_dict.bin", weights_only=True)
    package["evil"] = Payload(str(marker))
    torch.save(package, ac / "state_dict.bin")
    with pytest.raises(MusicgenError, match="refusing to load"):
        MusicGen.load(str(ac))
    assert not marker.exists()


def test_truncated_audiocraft_file(mono_ckpt, tmp_path):
    ac = make_audiocraft_checkpoint(mono_ckpt, tmp_path / "ac")
    data = (ac / "state_dict.bin").read_bytes()
    (ac / "state_dict.bin").write_bytes(data[: len(data) // 3])
    with pytest.raises(MusicgenError, match="truncated or corrupt"):
        MusicGen.load(str(ac))


def copy_with_config_edit(src, dst, old, new):
    shutil.copytree(src, dst)
    text = (dst / "config.json").read_text()
    assert old in text
    (dst / "config.json").write_text(text.replace(old, new))
    return dst


def test_weights_that_do_not_fit_the_config(mono_ckpt, tmp_path):
    bad = copy_with_config_edit(mono_ckpt, tmp_path / "bad", '"num_hidden_layers": 2', '"num_hidden_layers": 3')
    with pytest.raises(MusicgenError, match="do not match"):
        MusicGen.load(str(bad))


def test_sharded_safetensors_and_pytorch_bin_layouts(mono_ckpt, tmp_path):
    from transformers import MusicgenForConditionalGeneration

    hf = MusicgenForConditionalGeneration.from_pretrained(mono_ckpt)
    opts = SamplingOptions(top_k=1)
    ref = MusicGen.load(str(mono_ckpt), device="cpu").generate_codes(["folk"], 1.0, opts)
    sharded = tmp_path / "sharded"
    hf.save_pretrained(sharded, max_shard_size="100KB")
    assert (sharded / "model.safetensors.index.json").is_file()
    as_bin = tmp_path / "bin"
    shutil.copytree(mono_ckpt, as_bin)
    (as_bin / "model.safetensors").unlink()
    torch.save(hf.state_dict(), as_bin / "pytorch_model.bin")
    for folder in (sharded, as_bin):
        for name in ("spiece.model", "tokenizer.json", "tokenizer_config.json"):
            shutil.copy(mono_ckpt / name, folder / name)
        assert torch.equal(MusicGen.load(str(folder), device="cpu").generate_codes(["folk"], 1.0, opts), ref)


def test_melody_checkpoint_is_named_as_such(mono_ckpt, tmp_path):
    melody = copy_with_config_edit(mono_ckpt, tmp_path / "melody", '"model_type": "musicgen"', '"model_type": "musicgen_melody"')
    with pytest.raises(MusicgenError, match="melody checkpoint"):
        MusicGen.load(str(melody))


def test_hub_files_with_weight_g_weight_v_names(mono_ckpt, tmp_path):
    """Checkpoints saved by older transformers name EnCodec's weight norm weight_g / weight_v."""
    from safetensors.torch import load_file, save_file

    old = tmp_path / "old-names"
    shutil.copytree(mono_ckpt, old)
    state = load_file(old / "model.safetensors")
    renamed = {
        k.replace("parametrizations.weight.original0", "weight_g").replace("parametrizations.weight.original1", "weight_v"): v
        for k, v in state.items()
    }
    assert sum(k.endswith("weight_g") for k in renamed) > 5
    save_file(renamed, old / "model.safetensors")
    codes = torch.randint(0, 64, (1, 4, 20))
    ref = MusicGen.load(str(mono_ckpt), device="cpu").codec.decode(codes)
    assert torch.equal(MusicGen.load(str(old), device="cpu").codec.decode(codes), ref)
