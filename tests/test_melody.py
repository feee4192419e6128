"""Melody models against transformers' MusicgenMelodyForConditionalGeneration, and `musicgen melody`."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from transformers import AutoTokenizer, MusicgenMelodyForConditionalGeneration

from musicgen_cli import MusicGen, SamplingOptions, chroma
from musicgen_cli.conditioning import with_unconditional
from cli_helpers import run_main
from hf_reference import hf_generate

PROMPTS = ["an orchestral version with strings and brass", "rock"]  # unequal lengths: padding
SR = chroma.SAMPLE_RATE
NOTE = {"C": 0, "D": 2, "E": 4, "G": 7, "A": 9}


def tones(names: str, seconds_each: float) -> torch.Tensor:
    """A melody of pure tones (octave 4), e.g. "CEGA" -> [samples] float32 at 32 kHz."""
    t = torch.arange(int(seconds_each * SR)) / SR
    parts = [0.5 * torch.sin(2 * torch.pi * 261.63 * 2 ** (NOTE[n] / 12) * t) for n in names]
    return torch.cat(parts).float()


@pytest.fixture(params=["mono", "stereo"])
def any_melody_ckpt(request, melody_ckpt, stereo_melody_ckpt):
    return melody_ckpt if request.param == "mono" else stereo_melody_ckpt


def moving_chroma(batch: int, frames: int = 235) -> torch.Tensor:
    bins = (torch.arange(frames)[None] // 7 + 3 * torch.arange(batch)[:, None]) % 12
    return torch.nn.functional.one_hot(bins, 12).float()


@pytest.mark.parametrize("cfg", [3.0, 1.0])
def test_step_logits_match(any_melody_ckpt, cfg):
    hf = MusicgenMelodyForConditionalGeneration.from_pretrained(any_melody_ckpt).eval()
    ours = MusicGen.load(str(any_melody_ckpt), device="cpu", backend="torch")
    inputs = AutoTokenizer.from_pretrained(any_melody_ckpt)(PROMPTS, padding=True, return_tensors="pt")
    k, columns, b = hf.decoder.num_codebooks, 20, len(PROMPTS)
    torch.manual_seed(0)
    dec = torch.randint(0, hf.decoder.config.vocab_size + 1, (b, k, columns))
    melody = moving_chroma(b)
    null = chroma.null_chroma(b, 235)

    def hf_logits(mask, features):
        out = hf(input_ids=inputs["input_ids"], attention_mask=mask, input_features=features,
                 decoder_input_ids=dec.reshape(-1, columns)).logits
        return out[:, -columns:].reshape(b, k, columns, -1)  # the prefix's positions come first

    with torch.no_grad():
        ref = hf_logits(inputs["attention_mask"], melody)
        if cfg != 1.0:  # transformers' guidance rows: zero text states, chroma one-hot at bin 0
            ref = torch.cat([ref, hf_logits(torch.zeros_like(inputs["attention_mask"]), null)])
        states, mask = ours.text(PROMPTS)
        features = melody
        if cfg != 1.0:
            (states, mask), features = with_unconditional(states, mask), torch.cat([melody, null])
        ours.lm.set_conditioning(states, mask, features)
        rows = dec if cfg == 1.0 else torch.cat([dec, dec])
        ours.lm.setup_caches(rows.shape[0], columns)
        steps = [ours.lm(rows[:, :, :5], 0)] + [ours.lm(rows[:, :, c : c + 1], c) for c in range(5, columns)]
    got = torch.cat(steps, dim=2)
    assert got.shape == ref.shape
    assert (got - ref).abs().max() < 1e-4


@pytest.mark.parametrize("cfg", [3.0, 1.0])
@pytest.mark.parametrize("with_melody", [True, False])
@pytest.mark.parametrize("backend", ["torch", "cpu"])  # the reference, and the fast path at float32
def test_greedy_tokens_match(any_melody_ckpt, cfg, with_melody, backend):
    """A 30 s melody (one window's worth): our chroma of it, given to transformers, and our whole
    path from the waveform give the same greedy tokens. Without a melody: the null chroma."""
    hf = MusicgenMelodyForConditionalGeneration.from_pretrained(any_melody_ckpt).eval()
    ours = MusicGen.load(str(any_melody_ckpt), device="cpu", backend=backend, dtype="float32")
    frames = 100
    melody = torch.stack([tones("CEGAGEDC" * 4, 30 / 32), tones("AGEDCDEG" * 4, 30 / 32)])
    assert melody.shape[1] == 30 * SR
    features = chroma.chroma(melody) if with_melody else None
    inputs = AutoTokenizer.from_pretrained(any_melody_ckpt)(PROMPTS, padding=True, return_tensors="pt")
    extra = {} if features is None else {"input_features": features}
    ref, hf_wav = hf_generate(hf, inputs, **extra, do_sample=False, guidance_scale=cfg, max_new_tokens=frames + 3)
    codes = ours.generate_codes(PROMPTS, frames / 50, SamplingOptions(top_k=1, cfg=cfg),
                                melody=melody if with_melody else None)
    assert codes.shape == ref.shape == (2, hf.decoder.num_codebooks, frames)
    assert torch.equal(codes, ref)
    assert len(torch.unique(codes)) > 8
    assert torch.allclose(ours.codec.decode(codes), hf_wav, atol=1e-5)


def test_the_melody_changes_the_music(melody_ckpt):
    ours = MusicGen.load(str(melody_ckpt), device="cpu")
    greedy = SamplingOptions(top_k=1)
    a = ours.generate_codes(["x"], 1.0, greedy, melody=tones("CEGA", 1.0)[None])
    b = ours.generate_codes(["x"], 1.0, greedy, melody=tones("DGAE", 1.0)[None])
    assert (a != b).float().mean() > 0.3


def recorded_windows(mg, monkeypatch):
    """Record the chroma each window is conditioned on (the conditional rows)."""
    seen = []
    set_conditioning = mg.lm.set_conditioning

    def record(states, mask, features=None):
        seen.append(features[: features.shape[0] // 2] if features is not None else None)
        return set_conditioning(states, mask, features)

    monkeypatch.setattr(mg.lm, "set_conditioning", record)
    return seen


def dominant(features: torch.Tensor, frames: slice) -> int:
    return int(features[0, frames].sum(0).argmax())


def test_the_melody_keeps_its_place_across_windows(melody_ckpt, monkeypatch):
    mg = MusicGen.load(str(melody_ckpt), device="cpu")
    mg.max_duration = 2.0  # 100-frame windows; each window's chroma covers 2 s of the melody
    seen = recorded_windows(mg, monkeypatch)
    melody = tones("AC", 2.0)[None]  # 2 s of A, then 2 s of C: 4 s, looped past that
    codes = mg.generate_codes(["x"], 7.0, SamplingOptions(seed=1), stride=1.0, melody=melody)
    assert codes.shape == (1, 4, 350)
    assert len(seen) == 6  # windows start at 0, 1, 2, 3, 4, 5 s
    first = slice(2, 8)  # well inside the first of the window's two seconds
    assert [dominant(c, first) for c in seen] == [NOTE[n] for n in "AACCAA"]


def test_a_short_melody_loops_and_a_long_one_is_cut(melody_ckpt, monkeypatch):
    mg = MusicGen.load(str(melody_ckpt), device="cpu")
    seen = recorded_windows(mg, monkeypatch)
    mg.generate_codes(["x"], 0.5, SamplingOptions(seed=1), melody=tones("CG", 1.0)[None])
    # 30 s of chroma from a 2 s melody: C, G, C, G, ... one second (7.8 frames) each
    per_second = [dominant(seen[0], slice(int(s * 7.8125) + 2, int(s * 7.8125) + 6)) for s in range(10)]
    assert per_second == [NOTE[n] for n in "CGCGCGCGCG"]
    seen.clear()
    mg.generate_codes(["x"], 0.5, SamplingOptions(seed=1), melody=tones("CG", 31.0)[None])
    assert seen[0].shape[1] == 235 and dominant(seen[0], slice(0, 230)) == NOTE["C"]


def test_text_only_models_refuse_a_melody(mono_ckpt):
    mg = MusicGen.load(str(mono_ckpt), device="cpu")
    with pytest.raises(Exception, match="musicgen-melody"):
        mg.generate_codes(["x"], 1.0, melody=tones("C", 1.0)[None])


def test_cli_melody(any_melody_ckpt, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    hum = tmp_path / "hum.wav"
    sf.write(hum, np.stack([tones("CEGE", 0.35).numpy()] * 2).T, 44100)  # stereo, 44.1 kHz: mixed, resampled
    code, lines = run_main(["melody", hum, "--style", "Orchestral", "-m", any_melody_ckpt, "--seed", "2"], capsys)
    assert code == 0, lines
    out = tmp_path / "hum-orchestral.wav"
    info = sf.info(out)
    channels = 2 if "stereo" in str(any_melody_ckpt) else 1
    assert (info.samplerate, info.channels) == (32000, channels)
    assert abs(info.frames - 4 * 0.35 * 32000 / 44100 * 32000) <= 640  # default: the melody's length
    side = json.loads((tmp_path / "hum-orchestral.json").read_text())
    assert side["style"] == "Orchestral" and side["input"] == str(hum) and side["seed"] == 2
    code, lines = run_main(["melody", hum, "-m", any_melody_ckpt, "-d", "1.5", "-o", "o.flac"], capsys)
    assert code == 0, lines
    assert sf.info(tmp_path / "o.flac").frames == 75 * 640


def test_cli_melody_on_a_text_model_is_one_line(mono_ckpt, tmp_path, capsys):
    hum = tmp_path / "hum.wav"
    sf.write(hum, tones("CE", 0.5).numpy(), SR)
    code, lines = run_main(["melody", hum, "-m", mono_ckpt, "-o", tmp_path / "o.wav"], capsys)
    assert code == 1 and len(lines) == 1 and "musicgen-melody" in lines[0], lines
    assert not (tmp_path / "o.wav").exists()


def test_generate_and_continue_work_with_a_melody_model(melody_ckpt, tmp_path, capsys):
    code, lines = run_main(["generate", "x", "-m", melody_ckpt, "-d", "0.5", "-o", tmp_path / "g.wav"], capsys)
    assert code == 0, lines
    src = tmp_path / "in.wav"
    sf.write(src, tones("CE", 0.5).numpy(), SR)
    code, lines = run_main(["continue", src, "-m", melody_ckpt, "-d", "1.5", "-o", tmp_path / "c.wav"], capsys)
    assert code == 0, lines
    assert sf.info(tmp_path / "c.wav").frames == 48000


def test_melody_eval_script(melody_ckpt, capsys):
    from musicgen_cli import melody_eval

    medians = melody_eval.main(["--model", str(melody_ckpt), "--duration", "1", "--seeds", "1", "--device", "cpu"])
    assert all(0.0 <= v <= 1.0 for v in medians.values())
    assert medians["tritone away (0 by construction)"] == 0.0
    assert "with melody" in capsys.readouterr().out
    tune = chroma.chroma(melody_eval.test_melody(2.0))[0].argmax(-1)
    assert set(tune.tolist()) <= {0, 2, 4, 5, 7}  # the tune's pitch classes, C major
