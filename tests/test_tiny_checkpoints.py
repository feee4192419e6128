"""The tiny checkpoint fixtures load with transformers / huggingface_hub and behave like real ones."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tiny_checkpoints as tc  # noqa: E402
from hf_reference import hf_generate  # noqa: E402

PROMPTS = ["lo-fi hip hop beat with mellow piano", "epic orchestral strings"]


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny matrices: with 2 intra-op threads on this 2-core box, a busy machine makes torch's worker
    threads spin (greedy generation went from 0.2 s to 15-30 s of CPU). One thread avoids that."""
    with tc.one_torch_thread():
        yield


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory) -> Path:
    return tc.make_hf_checkpoint(tmp_path_factory.mktemp("tiny") / "hf")


@pytest.fixture(scope="module")
def hf_model(hf_dir):
    from transformers import MusicgenForConditionalGeneration

    return MusicgenForConditionalGeneration.from_pretrained(hf_dir).eval()


def _greedy_codes(model, tokenizer, prompts, frames: int, **generate_kwargs) -> torch.Tensor:
    """Greedy CFG generation: the codes [B, K, frames] generate() hands to the codec."""
    inputs = tokenizer(prompts, padding=True, return_tensors="pt")
    return hf_generate(model, inputs, do_sample=False, max_new_tokens=frames + 3, guidance_scale=3.0,
                       **generate_kwargs)[0]


def test_tokenizer_loads_offline_with_t5_conventions(tmp_path):
    from transformers import AutoTokenizer

    tc.make_tokenizer_files(tmp_path)
    assert {"spiece.model", "tokenizer.json", "tokenizer_config.json"} <= set(os.listdir(tmp_path))
    tok = AutoTokenizer.from_pretrained(tmp_path)
    assert (tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2)
    enc = tok(["a b", "longer text here"], padding=True, return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    assert ids.shape == mask.shape and ids.shape[0] == 2
    for row, m in zip(ids, mask):
        n = int(m.sum())
        assert row[n - 1] == 1 and (row[n:] == 0).all() and m[:n].all()
    assert mask[0].sum() < mask[1].sum()
    # deterministic, and identical to plain sentencepiece on the same spiece.model
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(tmp_path / "spiece.model"))
    for text in ["Lo-fi  hip hop, with PIANO", "drum and bass at 174 bpm"]:
        assert tok(text)["input_ids"] == sp.encode(text) + [1]
    assert (tmp_path / "spiece.model").read_bytes() == tc._spiece_model()


def test_hf_checkpoint_layout_and_reload(hf_dir, hf_model):
    from transformers import AutoTokenizer

    files = set(os.listdir(hf_dir))
    assert {"config.json", "generation_config.json", "model.safetensors", "preprocessor_config.json",
            "spiece.model", "tokenizer.json", "tokenizer_config.json"} <= files
    gen = json.loads((hf_dir / "generation_config.json").read_text())
    assert gen["decoder_start_token_id"] == gen["pad_token_id"] == 64
    assert gen["guidance_scale"] == 3.0 and gen["do_sample"] is True and gen["max_length"] == 1500
    cfg = hf_model.config
    assert cfg.decoder.num_codebooks == 4 and cfg.decoder.vocab_size == 64
    assert cfg.text_encoder.vocab_size == len(AutoTokenizer.from_pretrained(hf_dir))
    assert hf_model.enc_to_dec_proj.weight.shape == (32, 24)
    # every LM weight is float16-exact (so a float16 audiocraft export is lossless)
    for p in hf_model.decoder.parameters():
        assert torch.equal(p, p.half().float())
    # the codec: hop 640, 50 frames/s, exactly 4 codebooks, codes not constant
    audio = 0.3 * torch.sin(torch.arange(32000) / 32000 * 2 * torch.pi * 440.0)[None, None]
    enc = hf_model.audio_encoder.encode(audio)
    codes = enc.audio_codes
    assert codes.shape[-2:] == (4, 50)
    assert len(set(codes.flatten().tolist())) > 8


def _assert_varies(codes: torch.Tensor) -> None:
    """60 greedy frames of 2 prompts x 4 codebooks: many ids, frequent changes, the text matters."""
    assert codes.shape == (2, 4, 60)
    assert int(codes.max()) < 64
    for b in range(2):
        for k in range(4):
            seq = codes[b, k]
            assert len(set(seq.tolist())) >= 10, seq
            assert int((seq[1:] != seq[:-1]).sum()) >= 30, seq
    assert (codes[0] != codes[1]).float().mean() > 0.5  # the text matters


def test_greedy_generation_varies(hf_dir, hf_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(hf_dir)
    _assert_varies(_greedy_codes(hf_model, tok, PROMPTS, frames=60))


def test_stereo_checkpoint(tmp_path):
    from transformers import MusicgenForConditionalGeneration

    folder = tc.make_hf_checkpoint(tmp_path / "stereo", stereo=True, seed=1)
    model = MusicgenForConditionalGeneration.from_pretrained(folder)
    assert model.config.decoder.num_codebooks == 8 and model.config.decoder.audio_channels == 2
    assert model.config.audio_encoder.audio_channels == 1


def test_deterministic(tmp_path, hf_dir):
    from safetensors.torch import load_file

    again = tc.make_hf_checkpoint(tmp_path / "again")
    a, b = load_file(str(hf_dir / "model.safetensors")), load_file(str(again / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_audiocraft_checkpoint(tmp_path, hf_dir):
    from safetensors.torch import load_file

    out = tc.make_audiocraft_checkpoint(hf_dir, tmp_path / "ac")
    pkg = torch.load(out / "state_dict.bin", map_location="cpu", weights_only=True)
    assert set(pkg) == {"best_state", "xp.cfg"}
    assert isinstance(pkg["xp.cfg"], str)
    cfg = yaml.safe_load(pkg["xp.cfg"])
    lm = cfg["transformer_lm"]
    assert (lm["dim"], lm["num_heads"], lm["num_layers"], lm["hidden_scale"], lm["card"], lm["n_q"]) == (
        32, 2, 2, 2, 64, 4)
    assert cfg["codebooks_pattern"]["delay"]["delays"] == [0, 1, 2, 3]
    assert cfg["conditioners"]["description"]["t5"]["name"] == "t5-base"
    assert cfg["fuser"]["cross"] == ["description"]
    assert cfg["dataset"]["segment_duration"] == 30 and cfg["sample_rate"] == 32000 and cfg["channels"] == 1

    state = pkg["best_state"]
    hf = load_file(str(hf_dir / "model.safetensors"))
    assert state["emb.0.weight"].shape == (65, 32)
    qkv = state["transformer.layers.1.cross_attention.in_proj_weight"].float()
    assert torch.equal(qkv[32:64], hf["decoder.model.decoder.layers.1.encoder_attn.k_proj.weight"])
    assert torch.equal(state["transformer.layers.0.self_attn.in_proj_weight"].float()[:32],
                       hf["decoder.model.decoder.layers.0.self_attn.q_proj.weight"])
    assert torch.equal(state["condition_provider.conditioners.description.output_proj.bias"].float(),
                       hf["enc_to_dec_proj.bias"])
    assert torch.equal(state["linears.3.weight"].float(), hf["decoder.lm_heads.3.weight"])
    n_hf_lm = sum(1 for k in hf if k.startswith(("decoder.", "enc_to_dec_proj.")))
    n_qkv = 2 * 2 * 3  # layers x attentions x (q, k, v) -> one in_proj each
    assert len(state) == n_hf_lm - n_qkv + 2 * 2

    comp = torch.load(out / "compression_state_dict.bin", map_location="cpu", weights_only=True)
    assert comp["pretrained"] == "facebook/encodec_32khz"

    stereo = tc.make_hf_checkpoint(tmp_path / "st", stereo=True)
    cfg = yaml.safe_load(torch.load(tc.make_audiocraft_checkpoint(stereo, tmp_path / "ac_st") / "state_dict.bin",
                                    weights_only=True)["xp.cfg"])
    assert cfg["codebooks_pattern"]["delay"]["delays"] == [0, 0, 1, 1, 2, 2, 3, 3]
    assert cfg["transformer_lm"]["n_q"] == 8 and cfg["interleave_stereo_codebooks"]["use"] is True


def test_hub_cache_resolves_offline(tmp_path, hf_dir, hf_model, monkeypatch):
    # huggingface_hub reads HF_HUB_OFFLINE once, at import: set the env var for subprocesses and the
    # constant for this process. Without offline mode, AutoTokenizer probes optional files on the hub
    # and retries for ~2 minutes here.
    import huggingface_hub.constants
    from huggingface_hub import snapshot_download, try_to_load_from_cache

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    from transformers import AutoTokenizer, EncodecModel, MusicgenForConditionalGeneration, T5EncoderModel

    cache = tmp_path / "cache"
    snaps = tc.make_audiocraft_hub_cache(cache, hf_dir, tmp_path / "work", repo_id="facebook/musicgen-small")
    path = snapshot_download("facebook/musicgen-small", cache_dir=cache, local_files_only=True)
    assert Path(path) == snaps["facebook/musicgen-small"]
    assert {"state_dict.bin", "compression_state_dict.bin", "config.json"} <= set(os.listdir(path))
    found = try_to_load_from_cache("facebook/musicgen-small", "state_dict.bin", cache_dir=cache)
    assert isinstance(found, str) and torch.load(found, weights_only=True)["best_state"]

    model = MusicgenForConditionalGeneration.from_pretrained("facebook/musicgen-small", cache_dir=cache)
    assert torch.equal(model.decoder.lm_heads[0].weight, hf_model.decoder.lm_heads[0].weight)

    t5 = T5EncoderModel.from_pretrained("t5-base", cache_dir=cache).eval()
    tok = AutoTokenizer.from_pretrained("t5-base", cache_dir=cache)
    inputs = tok(PROMPTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        ref = hf_model.text_encoder(**inputs).last_hidden_state
        assert torch.equal(t5(**inputs).last_hidden_state, ref)

    codec = EncodecModel.from_pretrained("facebook/encodec_32khz", cache_dir=cache).eval()
    codes = torch.randint(0, 64, (1, 1, 4, 25))
    with torch.no_grad():
        a = codec.decode(codes, [None]).audio_values
        b = hf_model.audio_encoder.decode(codes, [None]).audio_values
    assert a.shape[-1] == 25 * 640 and torch.equal(a, b)


# ------------------------------------------------------------------------------------------------ melody

def _chroma(kind: str, batch: int = 2, frames: int = 50) -> torch.Tensor:
    """One-hot chroma [B, frames, 12] as MusicgenMelodyFeatureExtractor returns: 'steady' = bin 3 throughout,
    'moving' = the bin moves a fifth every 4 frames."""
    chroma = torch.zeros(batch, frames, 12)
    for t in range(frames):
        chroma[:, t, 3 if kind == "steady" else (t // 4 * 7) % 12] = 1.0
    return chroma


@pytest.fixture(scope="module")
def melody_dir(tmp_path_factory) -> Path:
    return tc.make_hf_checkpoint(tmp_path_factory.mktemp("tiny") / "melody", melody=True)


@pytest.fixture(scope="module")
def melody_model(melody_dir):
    from transformers import MusicgenMelodyForConditionalGeneration

    return MusicgenMelodyForConditionalGeneration.from_pretrained(melody_dir).eval()


def test_melody_checkpoint_layout_and_reload(tmp_path, melody_dir, melody_model):
    from safetensors.torch import load_file
    from transformers import AutoTokenizer, MusicgenMelodyForConditionalGeneration

    files = set(os.listdir(melody_dir))
    assert {"config.json", "generation_config.json", "model.safetensors", "preprocessor_config.json",
            "spiece.model", "tokenizer.json", "tokenizer_config.json"} <= files
    config = json.loads((melody_dir / "config.json").read_text())
    assert config["model_type"] == "musicgen_melody"
    assert config["architectures"] == ["MusicgenMelodyForConditionalGeneration"]
    assert (config["num_chroma"], config["chroma_length"]) == (12, 235)
    assert config["decoder"]["model_type"] == "musicgen_melody_decoder"
    pre = json.loads((melody_dir / "preprocessor_config.json").read_text())
    assert pre["feature_extractor_type"] == "MusicgenMelodyFeatureExtractor"
    assert pre["processor_class"] == "MusicgenMelodyProcessor"
    assert (pre["feature_size"], pre["num_chroma"], pre["sampling_rate"], pre["hop_length"], pre["n_fft"],
            pre["chunk_length"], pre["stem_indices"]) == (12, 12, 32000, 4096, 16384, 30, [3, 2])
    assert pre["return_attention_mask"] is False and pre["padding_value"] == 0.0
    gen = json.loads((melody_dir / "generation_config.json").read_text())
    assert gen["decoder_start_token_id"] == gen["pad_token_id"] == 64 and gen["guidance_scale"] == 3.0

    _, info = MusicgenMelodyForConditionalGeneration.from_pretrained(melody_dir, output_loading_info=True)
    assert not (info["missing_keys"] or info["unexpected_keys"] or info["mismatched_keys"])
    model = melody_model
    cfg = model.config
    assert cfg.decoder.num_codebooks == 4 and cfg.decoder.vocab_size == 64 and cfg.decoder.audio_channels == 1
    assert cfg.text_encoder.vocab_size == len(AutoTokenizer.from_pretrained(melody_dir))
    assert model.enc_to_dec_proj.weight.shape == (32, 24)
    assert model.audio_enc_to_dec_proj.weight.shape == (32, 12)
    assert not hasattr(model.decoder.model.decoder.layers[0], "encoder_attn")  # no cross-attention
    state = load_file(str(melody_dir / "model.safetensors"))
    assert not any("encoder_attn" in k for k in state)
    for name in ("decoder.", "enc_to_dec_proj.", "audio_enc_to_dec_proj."):  # float16-exact
        for k, v in state.items():
            if k.startswith(name):
                assert torch.equal(v, v.half().float()), k
    # re-initialised (transformers' own init: std 0.02 weights, zero biases)
    assert model.audio_enc_to_dec_proj.weight.std() > 0.5 and model.audio_enc_to_dec_proj.bias.abs().max() > 0
    # deterministic
    again = tc.make_hf_checkpoint(tmp_path / "again", melody=True)
    b = load_file(str(again / "model.safetensors"))
    assert state.keys() == b.keys() and all(torch.equal(state[k], b[k]) for k in state)
    with pytest.raises(ValueError):
        tc.make_hf_checkpoint(tmp_path / "bad", melody=True, hidden=12, text_hidden=24)
    with pytest.raises(NotImplementedError):
        tc.make_audiocraft_checkpoint(melody_dir, tmp_path / "ac")


def test_melody_conditioning_moves_logits(melody_dir, melody_model):
    """First decoding step, no guidance: chroma and text each change the logits by a sizeable fraction of
    their spread (not just by chaotic amplification of tiny differences during decoding)."""
    from transformers import AutoTokenizer

    inputs = AutoTokenizer.from_pretrained(melody_dir)(PROMPTS, padding=True, return_tensors="pt")
    start = torch.full((2 * 4, 1), 64)
    with torch.no_grad():
        steady = melody_model(**inputs, input_features=_chroma("steady"), decoder_input_ids=start).logits
        moving = melody_model(**inputs, input_features=_chroma("moving"), decoder_input_ids=start).logits
    # the logits cover the whole prefix: 235 chroma frames + text tokens + the decoder position
    assert steady.shape == (2 * 4, 235 + inputs["input_ids"].shape[1] + 1, 64)
    steady, moving = steady[:, -1], moving[:, -1]
    assert (steady - moving).abs().mean() / steady.std() > 0.05
    by_prompt = steady.reshape(2, 4, 64)
    assert (by_prompt[0] - by_prompt[1]).abs().mean() / steady.std() > 0.03


def test_melody_greedy_generation_varies(melody_dir, melody_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(melody_dir)
    steady = _greedy_codes(melody_model, tok, PROMPTS, frames=60, input_features=_chroma("steady"))
    moving = _greedy_codes(melody_model, tok, PROMPTS, frames=60, input_features=_chroma("moving"))
    for codes in (steady, moving):
        _assert_varies(codes)
    assert (steady != moving).float().mean() > 0.5  # the chroma matters


def test_melody_stereo_checkpoint(tmp_path):
    from transformers import AutoTokenizer, MusicgenMelodyForConditionalGeneration

    folder = tc.make_hf_checkpoint(tmp_path / "melody_stereo", melody=True, stereo=True, seed=1)
    model = MusicgenMelodyForConditionalGeneration.from_pretrained(folder).eval()
    assert model.config.decoder.num_codebooks == 8 and model.config.decoder.audio_channels == 2
    assert model.config.audio_encoder.audio_channels == 1
    tok = AutoTokenizer.from_pretrained(folder)
    steady = _greedy_codes(model, tok, PROMPTS, frames=30, input_features=_chroma("steady"))
    moving = _greedy_codes(model, tok, PROMPTS, frames=30, input_features=_chroma("moving"))
    assert steady.shape == moving.shape == (2, 8, 30)
    for b in range(2):
        for k in range(8):
            assert len(set(steady[b, k].tolist())) >= 8, steady[b, k]
    assert (steady[:, 0::2] != steady[:, 1::2]).float().mean() > 0.5  # left and right differ
    assert (steady != moving).float().mean() > 0.5
