"""Our T5 encoder, EnCodec and T5 tokenizer (musicgen_cli/t5.py, encodec.py, tokenizer.py) held to
transformers' modules, the reference: tiny random ones and the bundled checkpoint's."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, EncodecModel, T5Config, T5EncoderModel

import tiny_checkpoints as tc
from musicgen_cli import MusicgenError, checkpoints, registry
from musicgen_cli.encodec import EnCodec
from musicgen_cli.tokenizer import T5Tokenizer
from musicgen_cli.train import text

ATOL = 1e-5
PROMPTS = [
    "lo-fi hip hop beat with mellow piano chords",
    "Café déjà vu: naïve façade, Ærøskøbing, Ωμέγα, Привет, مرحبا",
    "日本の音楽、한국 음악、中文歌曲 🎵🎶🥁 with emoji 👩‍🎤",
    "ﬁ ligature ① ＦＵＬＬ　ＷＩＤＴＨ ½ ™",
    "a very long description, " * 200 + "x" * 1000,
    "",
    " ",
    "   \t\n  ",
    "  leading and   inner   and trailing spaces  ",
    "Hello,world!!! ... (test) [x] {y} <a> @#$%^&*_+=~`|\\/?;:'\"",
    "</s> <pad> <unk> in the text",
]


def _random_(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Every parameter random (norm weights around 1): defaults such as ones would hide mistakes."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            p.copy_(1.0 + 0.2 * noise if name.endswith("layer_norm.weight") else 0.3 * noise)
    return module.eval()


def _padded_ids(vocab: int, lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (len(lengths), max(lengths)), generator=gen)
    mask = (torch.arange(max(lengths))[None] < torch.tensor(lengths)[:, None]).long()
    return ids * mask, mask


# ------------------------------------------------------------------------------------------------ T5


def _tiny_t5(feed_forward_proj: str) -> T5EncoderModel:
    cfg = text.t5_config(tc.tokenizer_vocab_size(), 24, layers=3, heads=2, ffn=48)
    fields = {k: v for k, v in cfg.to_dict().items() if k not in ("dense_act_fn", "is_gated_act")}
    cfg = T5Config(**{**fields, "feed_forward_proj": feed_forward_proj})
    assert cfg.is_gated_act == feed_forward_proj.startswith("gated-")
    return _random_(T5EncoderModel(cfg), seed=len(feed_forward_proj))


@pytest.mark.parametrize("feed_forward_proj", ["relu", "gated-gelu"])
@pytest.mark.parametrize("embedding", ["both", "shared.weight", "encoder.embed_tokens.weight"])
def test_t5_encoder_matches_transformers(feed_forward_proj, embedding):
    ref = _tiny_t5(feed_forward_proj)
    state = ref.state_dict()
    if embedding != "both":  # files store the tied table under either name, or both
        state = {k: v for k, v in state.items() if not k.endswith("embed_tokens.weight") and k != "shared.weight"}
        state[embedding] = ref.shared.weight
    ours = checkpoints._text_encoder(ref.config.to_dict(), state)
    assert ours.cfg.gated == (feed_forward_proj == "gated-gelu")
    # lengths past max_distance (128) reach the logarithmic and the last position buckets
    ids, mask = _padded_ids(ref.config.vocab_size, [300, 7, 1, 150])
    with torch.no_grad():
        expected = ref(input_ids=ids, attention_mask=mask).last_hidden_state
        assert torch.allclose(ours(ids, mask), expected, atol=ATOL, rtol=0)
        assert torch.allclose(ours(ids[1:2, :7], mask[1:2, :7]), expected[1:2, :7], atol=ATOL, rtol=0)


def test_t5_encoder_refuses_missing_unexpected_and_unknown():
    ref = _tiny_t5("relu")
    state = ref.state_dict()
    config = ref.config.to_dict()
    missing = {k: v for k, v in state.items() if "relative_attention_bias" not in k}
    with pytest.raises(MusicgenError, match="text encoder weights do not match.*missing position_bias"):
        checkpoints._text_encoder(config, missing)
    with pytest.raises(MusicgenError, match="text encoder weights do not match.*unexpected"):
        extra = {"encoder.block.9.layer.0.SelfAttention.q.weight": state["shared.weight"]}
        checkpoints._text_encoder(config, {**state, **extra})
    with pytest.raises(MusicgenError, match="do not match"):  # one layer more in the config than in the file
        checkpoints._text_encoder({**config, "num_layers": 4}, state)
    with pytest.raises(MusicgenError, match="feed_forward_proj 'gated-swish-x'"):
        checkpoints._text_encoder({**config, "feed_forward_proj": "gated-swish-x"}, state)
    with pytest.raises(MusicgenError, match="activation 'swish'"):
        checkpoints._text_encoder({**config, "dense_act_fn": "swish"}, state)


# ------------------------------------------------------------------------------------------- EnCodec


def _tiny_encodec(seed: int, **overrides) -> EncodecModel:
    cfg = tc._codec_config(64)
    for key, value in overrides.items():
        setattr(cfg, key, value)
    model = _random_(EncodecModel(cfg), seed)
    tc._init_codec_codebooks(model, torch.Generator().manual_seed(seed))
    return model.eval()


def _as_hub_file(state: dict) -> dict:
    """transformers 5's parametrizations.weight.original0/1 -> the hub files' weight_g/weight_v."""
    return {k.replace(".parametrizations.weight.original0", ".weight_g")
             .replace(".parametrizations.weight.original1", ".weight_v"): v for k, v in state.items()}


def _audio(samples: int, batch: int = 2, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(samples) / tc.SAMPLE_RATE
    tone = torch.sin(2 * torch.pi * (220 + 440 * torch.rand(batch, 1, 1, generator=gen)) * t)
    return 0.4 * tone + 0.05 * torch.randn(batch, 1, samples, generator=gen)


def _check_codec(ref: EncodecModel, ours: EnCodec, samples: int) -> None:
    wav = _audio(samples)
    with torch.no_grad():
        expected = ref.encode(wav).audio_codes[0]
        codes = ours.encode(wav)
        assert codes.shape == expected.shape and torch.equal(codes, expected)
        assert torch.allclose(ours.decode(codes), ref.decode(codes[None], [None]).audio_values, atol=ATOL, rtol=0)


@pytest.mark.parametrize("style", ["parametrizations", "weight_g/weight_v", "plain weight"])
def test_encodec_matches_transformers_for_each_weight_norm_style(style):
    ref = _tiny_encodec(seed=1)
    state = ref.state_dict()
    if style == "weight_g/weight_v":
        state = _as_hub_file(state)
    elif style == "plain weight":
        state = {**EnCodec.hf_state(state), "quantizer.layers.0.codebook.inited": torch.ones(1)}
    ours = checkpoints._codec(ref.config.to_dict(), state)
    assert (ours.sampling_rate, ours.frame_rate, ours.hop_length, ours.num_codebooks) == (32000, 50, 640, 4)
    for samples in (32000, 32000 + 123, 700):  # whole frames; a partial last frame; shorter than the padding
        _check_codec(ref, ours, samples)


@pytest.mark.parametrize("overrides", [
    {"use_causal_conv": True},
    {"use_conv_shortcut": True, "num_lstm_layers": 1, "num_residual_layers": 2},
])
def test_encodec_matches_transformers_causal_and_with_shortcuts(overrides):
    ref = _tiny_encodec(seed=2, **overrides)
    _check_codec(ref, checkpoints._codec(ref.config.to_dict(), _as_hub_file(ref.state_dict())), 16000 + 77)


def test_half_precision_files_load_as_float32():
    ref = _tiny_t5("relu").half().float()  # weights that float16 holds exactly
    half = {k: v.half() for k, v in ref.state_dict().items()}
    ours = checkpoints._text_encoder(ref.config.to_dict(), half)
    assert all(p.dtype == torch.float32 for p in ours.parameters())
    ids, mask = _padded_ids(ref.config.vocab_size, [9, 4])
    with torch.no_grad():
        assert torch.allclose(ours(ids, mask), ref(input_ids=ids, attention_mask=mask).last_hidden_state, atol=ATOL)


def test_encodec_at_the_size_of_facebook_encodec_32khz():
    config = {"architectures": ["EncodecModel"], "audio_channels": 1, "chunk_length_s": None, "codebook_dim": 128,
              "codebook_size": 2048, "compress": 2, "dilation_growth_rate": 2, "hidden_size": 128, "kernel_size": 7,
              "last_kernel_size": 7, "model_type": "encodec", "norm_type": "weight_norm", "normalize": False,
              "num_filters": 64, "num_lstm_layers": 2, "num_residual_layers": 1, "overlap": None,
              "pad_mode": "reflect", "residual_kernel_size": 3, "sampling_rate": 32000, "target_bandwidths": [2.2],
              "trim_right_ratio": 1.0, "upsampling_ratios": [8, 5, 4, 4], "use_causal_conv": False,
              "use_conv_shortcut": False}
    from transformers import EncodecConfig

    torch.manual_seed(0)
    ref = EncodecModel(EncodecConfig(**config)).eval()
    tc._init_codec_codebooks(ref, torch.Generator().manual_seed(0))
    ours = checkpoints._codec(config, _as_hub_file(ref.state_dict()))
    assert ours.num_codebooks == 4 and ours.cfg.num_quantizers == 4
    _check_codec(ref, ours, 6400)


def test_encodec_refuses_what_it_does_not_support_and_wrong_weights():
    ref = _tiny_encodec(seed=3)
    config, state = ref.config.to_dict(), ref.state_dict()
    for change in [{"normalize": True}, {"chunk_length_s": 1.0}, {"norm_type": "time_group_norm"}]:
        with pytest.raises(MusicgenError, match="EnCodec configuration is not supported"):
            checkpoints._codec({**config, **change}, state)
    without_lstm = {k: v for k, v in state.items() if "lstm" not in k}
    with pytest.raises(MusicgenError, match="audio codec weights do not match.*missing .*lstm"):
        checkpoints._codec(config, without_lstm)
    with pytest.raises(MusicgenError, match="audio codec weights do not match"):
        checkpoints._codec({**config, "num_filters": 8}, state)
    ours = checkpoints._codec(config, state)
    with pytest.raises(ValueError, match="4 codebooks"):
        ours.encode(_audio(640), num_codebooks=5)
    assert ours.encode(_audio(640), num_codebooks=2).shape == (2, 2, 1)


# ------------------------------------------------------------------------------------------ tokenizer


@pytest.fixture(scope="module")
def tokenizer_folders(tmp_path_factory):
    """(tiny tokenizer folder, bundled folder): each with spiece.model and tokenizer.json."""
    tiny = tmp_path_factory.mktemp("tiny-tokenizer")
    tc.make_tokenizer_files(tiny)
    return [tiny, registry.BUNDLED_FOLDER]


@pytest.mark.parametrize("route", ["tokenizer.json", "spiece.model"])
@pytest.mark.parametrize("which", [0, 1], ids=["tiny", "bundled"])
def test_tokenizer_ids_identical_to_transformers(tokenizer_folders, tmp_path, route, which):
    folder = tokenizer_folders[which]
    reference = AutoTokenizer.from_pretrained(folder)
    if route == "spiece.model":
        # transformers needs protobuf to read spiece.model alone: its ids from the full folder are the reference
        shutil.copy(folder / "spiece.model", tmp_path / "spiece.model")
        folder = tmp_path
    ours = T5Tokenizer.from_folder(folder)
    assert ours.source.name == route
    for prompt in PROMPTS:
        assert ours.encode([prompt])[0] == reference(prompt)["input_ids"], prompt[:40]
    ids, mask = ours(PROMPTS)
    expected = reference(PROMPTS, padding=True, return_tensors="pt")
    assert torch.equal(ids, expected["input_ids"]) and torch.equal(mask, expected["attention_mask"])
    assert ids.dtype == mask.dtype == torch.long and ids.shape[1] > 1000


def test_tokenizer_missing_or_broken(tmp_path):
    with pytest.raises(MusicgenError, match="no T5 tokenizer in"):
        T5Tokenizer.from_folder(tmp_path)
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(MusicgenError, match="cannot load the T5 tokenizer"):
        T5Tokenizer.from_folder(tmp_path)


# ------------------------------------------------------------------------------------------- bundled


def test_bundled_text_encoder_matches_transformers():
    """The bundled T5 encoder gives transformers' states from the same stored weights (its codec, the
    second codec, is ours alone: tests/test_codec_v2.py; transformers cannot load the whole folder)."""
    from safetensors.torch import load_file

    ckpt = checkpoints.load(registry.BUNDLED)
    config = json.loads((registry.BUNDLED_FOLDER / "config.json").read_text())["text_encoder"]
    ref = T5EncoderModel(T5Config(**config)).eval()
    stored = load_file(registry.BUNDLED_FOLDER / "model.safetensors")
    state = {k.removeprefix("text_encoder."): v.float() for k, v in stored.items() if k.startswith("text_encoder.")}
    missing, unexpected = ref.load_state_dict(state, strict=False)
    assert not unexpected and set(missing) <= {"encoder.embed_tokens.weight"}  # tied to shared.weight
    ids, mask = ckpt.tokenizer(PROMPTS)
    with torch.no_grad():
        expected = ref(input_ids=ids, attention_mask=mask).last_hidden_state
        assert torch.allclose(ckpt.text_encoder(ids, mask), expected, atol=ATOL, rtol=0)


def test_loading_the_bundled_model_imports_no_transformers_nor_torch_dynamo():
    """transformers' modeling modules cost ~7 s of imports here, torch._dynamo (pulled in by random
    init on the meta device) 1.8 s: loading a model needs neither."""
    code = ("import sys, musicgen_cli.api as api; api.MusicGen.load('bundled', device='cpu'); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'transformers' or m == 'torch._dynamo'))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).parents[1])
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_a_whole_t5_folder_in_sharded_bin_files_gives_its_encoder(tmp_path):
    """audiocraft checkpoints name t5-base, whose hub folder holds the encoder-decoder model; shards
    of pytorch_model.bin with their index are read too (weights_only)."""
    from transformers import T5ForConditionalGeneration

    ref = _random_(T5ForConditionalGeneration(_tiny_t5("relu").config), seed=5)
    ref.save_pretrained(tmp_path)
    state = {k: v.contiguous() for k, v in ref.state_dict().items()}
    names = sorted(state)
    (tmp_path / "model.safetensors").unlink()
    weight_map = {}
    for i, part in enumerate([names[: len(names) // 2], names[len(names) // 2 :]]):
        torch.save({k: state[k] for k in part}, tmp_path / f"pytorch_model-0000{i + 1}-of-00002.bin")
        weight_map.update({k: f"pytorch_model-0000{i + 1}-of-00002.bin" for k in part})
    (tmp_path / "pytorch_model.bin.index.json").write_text(json.dumps({"weight_map": weight_map}))
    ours = checkpoints.t5_folder_encoder(tmp_path)
    ids, mask = _padded_ids(ref.config.vocab_size, [20, 5])
    with torch.no_grad():
        expected = ref.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        assert torch.allclose(ours(ids, mask), expected, atol=ATOL, rtol=0)
    (tmp_path / "pytorch_model-00002-of-00002.bin").unlink()
    with pytest.raises(MusicgenError, match="pytorch_model-00002-of-00002.bin is missing"):
        checkpoints.t5_folder_encoder(tmp_path)
