"""The training stages run for real on tiny data: render -> codec -> tokens -> LM -> Hugging Face folder -> generate.

Rendering needs FluidSynth and a General MIDI soundfont (scripts/install-soundfont; .ci/run installs them).
"""

import json

import numpy as np
import pytest
import torch

from musicgen_cli.data import dataset
from musicgen_cli.data.captions import style_of_caption
from musicgen_cli.data.compose import MELODY_CH, compose

try:
    from musicgen_cli.data.render import Renderer, find_soundfont

    import fluidsynth

    HAVE_SYNTH = bool(find_soundfont()) and hasattr(fluidsynth, "Synth")
except (ImportError, OSError, FileNotFoundError):
    HAVE_SYNTH = False

needs_synth = pytest.mark.skipif(not HAVE_SYNTH, reason="FluidSynth or the GM soundfont is not installed "
                                                        "(scripts/install-soundfont)")


@needs_synth
def test_render_is_exact_length_deterministic_and_the_melody_stem_is_the_melody():
    r = Renderer(32000)
    piece = compose(5, 4.0)
    a, b = r.render(piece), r.render(piece)
    assert a.shape == (128000,) and np.array_equal(a, b)
    assert np.sqrt(np.mean(a ** 2)) > 1e-3
    melody = r.render(piece, {MELODY_CH})
    assert 1e-4 < np.sqrt(np.mean(melody ** 2)) < np.sqrt(np.mean(a ** 2))
    assert not any(n.channel == MELODY_CH for n in piece.notes if n.start > 4.0)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    if not HAVE_SYNTH:
        pytest.skip("FluidSynth or the GM soundfont is not installed (scripts/install-soundfont)")
    folder = tmp_path_factory.mktemp("data")
    dataset.build(folder, 3, seconds=12.0, first_seed=7, workers=1)
    return folder


def test_dataset_folder(tiny_data):
    items = dataset.load(tiny_data)
    assert [i.seed for i in items] == [7, 8, 9]
    for item in items:
        mix = dataset.read(item.mix)
        assert mix.shape == (12 * 32000,)
        assert abs(np.sqrt(np.mean(mix ** 2)) - dataset.TARGET_RMS) < 0.02 or np.abs(mix).max() > 0.98
        assert style_of_caption(item.caption) == item.style


@pytest.fixture(scope="module")
def tiny_codec(tiny_data, tmp_path_factory):
    from musicgen_cli.train import codec

    out = tmp_path_factory.mktemp("codec")
    folder = codec.train(tiny_data, out, steps=6, batch=2, seconds=0.5, num_filters=4, codebook_size=64,
                         save_every=3, warmup=2)
    return out, folder


def test_codec_stage_saves_a_plain_encodec_that_reproduces_the_training_path(tiny_codec, tiny_data):
    from transformers import EncodecModel

    from musicgen_cli.train import codec

    out, folder = tiny_codec
    lines = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert lines[-1]["step"] == 6 and np.isfinite(lines[-1]["mel"])
    model = EncodecModel.from_pretrained(str(folder)).eval()
    wav = torch.from_numpy(dataset.read(dataset.load(tiny_data)[0].mix)[:32000])[None, None]
    with torch.no_grad():
        ours = codec.reconstruct(model, wav)  # the training forward pass, latent norm folded in
        codes = model.encode(wav).audio_codes
        theirs = model.decode(codes, [None]).audio_values[..., : wav.shape[-1]]
    assert codes.shape[2] == 4 and codes.shape[3] == 50
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-4)


def test_codec_stage_resumes_from_its_checkpoint(tiny_codec, tiny_data):
    from musicgen_cli.train import codec

    out, _ = tiny_codec
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 6
    codec.train(tiny_data, out, steps=8, batch=2, seconds=0.5, num_filters=4, codebook_size=64, warmup=2)
    steps = [json.loads(x)["step"] for x in (out / "log.jsonl").read_text().splitlines()]
    assert steps[-1] == 8 and steps.count(6) == 1  # went on from 6, did not start again


def test_latent_norm_folds_into_the_encoder():
    from transformers import EncodecModel

    from musicgen_cli.train.codec import LatentNorm, codec_config

    torch.manual_seed(0)
    model = EncodecModel(codec_config(num_filters=4, codebook_size=64)).eval()
    norm = LatentNorm(model.config.hidden_size).eval()
    norm.mean.normal_()
    norm.var.uniform_(0.5, 3.0)
    wav = torch.randn(1, 1, 3200) * 0.1
    with torch.no_grad():
        before = norm(model.encoder(wav))
        norm.fold(model)
        after = model.encoder(wav)
    torch.testing.assert_close(before, after, atol=1e-5, rtol=1e-4)


@pytest.fixture(scope="module")
def tiny_codec_v2(tmp_path_factory):
    """An untrained second codec (codec_v2) in its stage folder: config.json + codec.pt, float16."""
    from musicgen_cli.codec_v2 import BundledCodec, CodecConfig

    torch.manual_seed(0)
    config = CodecConfig(enc_ffts=[1024, 256], dec_fft=1280, dim=32, enc_blocks=1, dec_blocks=1, latent_dim=8,
                         codebook_size=64)
    return BundledCodec(config).save(tmp_path_factory.mktemp("codec2") / "codec", half=True)


@pytest.mark.parametrize("which", ["encodec", "codec_v2"])
def test_lm_stage_trains_exports_and_the_folder_generates(which, request, tiny_data, tmp_path):
    from musicgen_cli.api import MusicGen
    from musicgen_cli.sampling import SamplingOptions
    from musicgen_cli.train import export, lm

    codec_folder = request.getfixturevalue("tiny_codec")[1] if which == "encodec" else request.getfixturevalue("tiny_codec_v2")
    tokens = lm.tokenize(tiny_data, codec_folder, tmp_path / "tokens.pt")
    data = torch.load(tokens, weights_only=True)
    assert data["codes"].shape == (3, 4, 600) and data["chroma"].shape == (3, 94, 12)
    assert (data["chroma"].sum(-1) == 1).all()
    out = tmp_path / "lm"
    lm.train([tokens], codec_folder, out, total_steps=6, stop_at=4, batch=2, vocab_size=60, layers=1, dim=32,
             save_every=2, heldout=tokens)
    first = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert len(first) == 1 and np.isfinite(first[0]["loss"]) and np.isfinite(first[0]["heldout"])
    # resumed with other values: the run's plan (6 steps, its schedule, its sizes) holds
    lm.train([tokens], codec_folder, out, total_steps=60, batch=2, vocab_size=60, layers=2, dim=32, save_every=2)
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["step"] == 6 and state["opt"]["param_groups"][0]["lr"] == lm.learning_rate(5, 6, 1e-3)
    folder = export.export(out, codec_folder, tmp_path / "model")
    mg = MusicGen.load(str(folder))
    assert mg.melody and mg.max_duration == lm.WINDOW_S
    codes = mg.generate_codes(["a jazz tune"], 0.4, SamplingOptions(seed=1))
    assert codes.shape == (1, 4, 20) and int(codes.max()) < 64
    melody = torch.from_numpy(dataset.read(dataset.load(tiny_data)[0].melody))[None]
    assert mg.generate_codes(["a jazz tune"], 0.4, SamplingOptions(seed=1), melody=melody).shape == (1, 4, 20)
    # the folder's codec is the one trained on, and it encodes the pieces as the tokens stage did
    wav = torch.from_numpy(dataset.read(dataset.load(tiny_data)[1].mix))[None, None]
    assert torch.equal(mg.codec.encode(wav, 4)[0].to(torch.int16), data["codes"][1])
    assert type(mg.codec.model) is type(lm.load_codec(codec_folder))

