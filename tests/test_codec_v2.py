"""The second codec (musicgen_cli.codec_v2), its losses and its training, on tiny data."""

import json

import soundfile as sf
import torch

from musicgen_cli.codec import Codec
from musicgen_cli.codec_v2 import BundledCodec, CodecConfig
from musicgen_cli.data.compose import Note, compose
from musicgen_cli.data.score import roll
from musicgen_cli.evaluate.listening import plain_synth
from musicgen_cli.train import codec2
from musicgen_cli.train.codec import Quantizer
from musicgen_cli.train.losses import SpectralLoss, score_loss

TINY = CodecConfig(enc_ffts=[1024, 256], dec_fft=1280, dim=32, enc_blocks=1, dec_blocks=1, latent_dim=8,
                   codebook_size=16)


def sine(freq: float, seconds: float = 1.0, amp: float = 0.1) -> torch.Tensor:
    t = torch.arange(int(32000 * seconds)) / 32000
    return (amp * torch.sin(2 * torch.pi * freq * t))[None, None]


def seeded_codec() -> BundledCodec:
    torch.manual_seed(0)
    model = BundledCodec(TINY)
    quantizer = Quantizer(model, TINY.num_codebooks)
    model.train()
    quantizer(model.latents(torch.randn(2, 1, 6400) * 0.1), update=True)  # seeds the codebooks
    return model.eval()


def test_shapes_round_trip_and_the_codec_wrapper():
    model = seeded_codec()
    codec = Codec(model)
    assert (codec.sample_rate, codec.frame_rate, codec.hop_length) == (32000, 50.0, 640)
    wav = torch.randn(2, 1, 32000) * 0.1
    codes = codec.encode(wav, 4)
    assert codes.shape == (2, 4, 50) and codes.dtype == torch.long and int(codes.max()) < 16
    out = codec.decode(codes)
    assert out.shape == (2, 1, 32000) and torch.isfinite(out).all()


def test_runtime_encode_matches_the_training_quantizer():
    model = seeded_codec()
    latents = model.latents(torch.randn(1, 1, 12800) * 0.1)
    _, train_codes, _ = Quantizer(model, 4)(latents, update=False)
    assert torch.equal(model.quantizer.encode(latents, 4), train_codes)


def test_save_and_load_keep_the_codes_and_drop_training_state(tmp_path):
    model = seeded_codec()
    wav = torch.randn(1, 1, 16000) * 0.1
    model.save(tmp_path / "f32")
    model.save(tmp_path / "f16", half=True)
    state = torch.load(tmp_path / "f16" / "codec.pt", weights_only=True)
    assert not any(k.startswith("aux_head") or k.endswith("embed_avg") for k in state)
    assert json.loads((tmp_path / "f32" / "config.json").read_text())["model_type"] == "musicgen_codec_v2"
    again = BundledCodec.load(tmp_path / "f32")
    a, b = model.encode(wav), again.encode(wav)
    assert torch.equal(a, b)
    assert torch.allclose(model.decode(a), again.decode(a), atol=1e-5)
    assert BundledCodec.load(tmp_path / "f16").encode(wav).shape == a.shape


def test_a_held_note_is_not_a_comb_at_the_frame_rate():
    """Integrated phases: a decoder that outputs the same frame every time gives a steady tone, not a
    signal repeating every hop (whose spectrum would be lines 50 Hz apart)."""
    from musicgen_cli.evaluate.listening import comb_share

    model = BundledCodec(TINY).eval()
    with torch.no_grad():
        for p in model.decoder.parameters():
            p.zero_()
        model.decoder.out.bias[: 641] = -20.0
        model.decoder.out.bias[35] = 0.0  # one bin: 35 * 25 Hz = 875 Hz, not a multiple of 50 Hz
        wav = model.synthesize(torch.zeros(1, 8, 100))[0, 0].numpy()
    assert comb_share(wav) < 0.2


def test_spectral_loss_hears_a_semitone_and_is_zero_on_a_copy():
    loss = SpectralLoss()
    a = sine(440.0)
    assert float(sum(loss(a, a))) < 1e-6
    near, semitone = sum(loss(a, sine(440.0, amp=0.11))), sum(loss(a, sine(466.16)))
    assert float(semitone) > 2 * float(near)
    only_8192 = SpectralLoss((8192,))
    assert float(only_8192(a, sine(446.0))[0]) > float(only_8192(a, sine(440.5))[0])


def test_score_loss_rewards_the_right_notes_and_reaches_the_encoder():
    target = torch.zeros(1, 10, 14)
    target[:, :, 0] = 1
    target[:, 0, 12] = 1
    right = (target.transpose(1, 2) * 2 - 1) * 5
    assert float(score_loss(right, target)) < 0.05 < float(score_loss(torch.zeros(1, 14, 10), target))
    model = BundledCodec(TINY)
    logits = model.aux_head(model.latents(torch.randn(1, 1, 6400)).transpose(1, 2)).transpose(1, 2)
    score_loss(logits, target).backward()
    assert model.encoder.inp.weight.grad.abs().sum() > 0


def test_roll_marks_pitch_classes_onsets_and_drums():
    piece = compose(3, 4.0)
    piece.notes = [Note(0.1, 0.5, 62, 90, 0), Note(1.0, 0.1, 36, 100, 9)]
    r = roll(piece, 200)
    assert r.shape == (200, 14)
    assert r[5:30, 2].all() and not r[31:, 2].any() and r[:, [0, 1, 3]].sum() == 0
    assert r[5, 12] == 1 and r[:, 12].sum() == 1 and r[50, 13] == 1 and r[:, 13].sum() == 1


def test_training_runs_resumes_on_its_planned_schedule_and_exports(tmp_path, monkeypatch):
    data = tmp_path / "data"
    (data / "mix").mkdir(parents=True)
    rows = []
    for seed in (11, 12):
        sf.write(data / "mix" / f"{seed}.flac", plain_synth(compose(seed, 3.0)), 32000, subtype="PCM_16")
        rows.append(json.dumps({"seed": seed, "caption": "", "style": "", "tempo": 100, "key": "C",
                                "mode": "major"}))
    (data / "manifest.jsonl").write_text("\n".join(rows) + "\n")
    monkeypatch.setattr(codec2, "WARMUP_AE", 2)
    run = tmp_path / "run"
    codec2.train(data, run, total_steps=6, stop_at=3, batch=2, seconds=0.64, config=TINY, save_every=100)
    assert codec2.load_run(run)[1] == 3
    codec2.train(data, run, total_steps=999, batch=2, seconds=0.64, config=TINY, save_every=100)
    assert codec2.load_run(run)[1] == 6  # the plan's total, not the later call's
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 6 and len(log[-1]["distinct_codes"]) == 4
    assert codec2.learning_rate(3, 6, 1.0) == codec2.learning_rate(3, 6, 1.0) > codec2.learning_rate(5, 6, 1.0)
    folder = codec2.export(run, tmp_path / "codec")
    assert BundledCodec.load(folder).encode(torch.zeros(1, 1, 6400)).shape == (1, 4, 10)


def test_frozen_codes_stay_fixed_while_the_decoder_learns(tmp_path, monkeypatch):
    """From freeze_codes_at on, an input's codes no longer change (an LM can learn from them) but the
    decoder does; a plan that never had the field gets it once from a later call."""
    data = tmp_path / "data"
    (data / "mix").mkdir(parents=True)
    sf.write(data / "mix" / "11.flac", plain_synth(compose(11, 3.0)), 32000, subtype="PCM_16")
    (data / "manifest.jsonl").write_text(json.dumps({"seed": 11, "caption": "", "style": "", "tempo": 100,
                                                     "key": "C", "mode": "major"}) + "\n")
    monkeypatch.setattr(codec2, "WARMUP_AE", 1)
    run = tmp_path / "run"
    codec2.train(data, run, total_steps=8, stop_at=3, batch=2, seconds=0.64, config=TINY, save_every=100)
    plan = json.loads((run / "run.json").read_text())
    del plan["freeze_codes_at"]  # as a run planned before the option existed
    (run / "run.json").write_text(json.dumps(plan))
    codec2.train(data, run, total_steps=8, stop_at=4, batch=2, seconds=0.64, config=TINY, save_every=100,
                 freeze_codes_at=4)
    assert json.loads((run / "run.json").read_text())["freeze_codes_at"] == 4
    wav = torch.from_numpy(plain_synth(compose(12, 1.0)))[None, None]
    before, _ = codec2.load_run(run)
    codec2.train(data, run, total_steps=8, batch=2, seconds=0.64, config=TINY, save_every=100, freeze_codes_at=0)
    after, step = codec2.load_run(run)
    assert step == 8
    assert torch.equal(before.encode(wav), after.encode(wav))
    for name, tensor in before.state_dict().items():
        same = torch.equal(tensor, after.state_dict()[name])
        assert same != name.startswith("decoder."), name  # only (and every part of) the decoder moved

    from musicgen_cli.evaluate.codec_report import first_level_probe

    mix = plain_synth(compose(1_000_003, 2.0))
    model = seeded_codec()
    with torch.no_grad():
        model.aux_head.bias.fill_(10.0)  # says "everything sounds, always": F1 = 2p / (1 + p)
    result = first_level_probe(model, [(mix, None, 0, "major", 1_000_003)])
    assert 0.0 < result["pitch_class_f1"] < 1.0 and 0.0 < result["onset_f1"] < 1.0


def test_semitone_loss_hears_a_semitone_in_the_bass():
    loss = SpectralLoss()
    low = sine(55.0, 2.0)  # A1: a semitone is 3.3 Hz here, less than an 8192-point bin
    assert float(loss.semitones(low, low)) < 1e-6
    assert float(loss.semitones(low, sine(58.27, 2.0))) > 3 * float(loss.semitones(low, sine(55.0, 2.0, 0.11)))
    bank = loss.bank
    assert bank.shape == (4097, 80) and torch.allclose(bank.sum(1).max(), torch.tensor(1.0))


def test_flux_loss_sees_flickering_noise_more_than_a_steady_level_change():
    from musicgen_cli.train.codec import MelLoss
    from musicgen_cli.train.losses import flux_loss

    mel = MelLoss(scales=(1024,))
    a = sine(440.0)
    noisy = a + 0.003 * torch.randn_like(a)
    assert float(flux_loss(mel, a, a)) < 1e-6
    assert float(flux_loss(mel, a, noisy)) > 3 * float(flux_loss(mel, a, a * 0.5))


def test_the_decoder_cannot_make_a_dc_offset():
    from musicgen_cli.evaluate.listening import dc_offset

    model = BundledCodec(TINY).eval()
    with torch.no_grad():
        for p in model.decoder.parameters():
            p.zero_()
        model.decoder.out.bias[:641] = -20.0
        model.decoder.out.bias[0] = 5.0  # all the energy asked of the lowest bin
        model.decoder.out.bias[40] = 0.0
        wav = model.synthesize(torch.zeros(1, 8, 100))[0, 0].numpy()
    assert dc_offset(wav) < 0.01
