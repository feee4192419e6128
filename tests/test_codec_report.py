"""The codec report's measures (musicgen_cli.evaluate.listening / codec_report) on tiny synthetic pieces:
a perfect codec passes the gate, a codec that plays the same sound for every input fails it."""

import struct
import zlib

import numpy as np

from musicgen_cli.data.compose import compose
from musicgen_cli.evaluate import codec_report as cr
from musicgen_cli.evaluate import features as ft
from musicgen_cli.evaluate import listening as ls


def pieces(count=4, seconds=6.0):
    out = []
    for seed in range(1_000_000, 1_000_000 + count):
        piece = compose(seed, seconds)
        out.append((ls.plain_synth(piece, seconds), ft.pitch_class(piece.key), piece.mode))
    return out


def test_a_perfect_codec_keeps_notes_rhythm_and_no_comb():
    result = cr.measure(lambda a: a.copy(), pieces())
    assert result["chroma_agreement"] == 1.0 and result["onset_correlation"] > 0.99
    assert result["chroma_agreement_chance"] < 0.5
    assert result["comb_share"] < 0.2 and result["dc_offset"] < 0.05
    assert result["key_accuracy"] == result["key_accuracy_original"]


def test_a_codec_that_plays_the_same_sound_for_every_input_fails_the_gate():
    same = pieces(1)[0][0]
    result = cr.measure(lambda a: same[: len(a)], pieces()[1:])
    passed = cr.gate(result)
    assert not passed["chroma_agreement"] and not passed["onset_correlation"]
    assert not all(passed.values())


def test_a_frame_rate_comb_and_a_dc_offset_are_caught():
    t = np.arange(32000 * 2) / 32000
    comb = sum(np.sin(2 * np.pi * 50 * k * t) for k in range(1, 40)).astype(np.float32)
    noise = np.random.default_rng(0).standard_normal(len(t)).astype(np.float32)
    assert ls.comb_share(comb) > 0.9 and ls.comb_share(noise) < 0.15
    assert ls.dc_offset(noise + 1.0) > 0.5 > 0.05 > ls.dc_offset(noise)


def test_spectrogram_png_is_a_valid_png(tmp_path):
    image = ls.spectrogram_image(pieces(1, 2.0)[0][0])
    path = tmp_path / "s.png"
    ls.write_png(path, [image, image])
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert width == image.shape[1] and height == 2 * image.shape[0] + 4
    length = struct.unpack(">I", data[33:37])[0]
    assert len(zlib.decompress(data[41 : 41 + length])) == height * (1 + 3 * width)
