"""Decoding codes to audio while they arrive, chunk by chunk, to the same samples as one decode.

A codec's decoder is cut into stages of two kinds:

- stages that look a fixed number of frames back and ahead (convolutions, an inverse STFT): an
  `Overlap` keeps those frames around each new chunk and gives only the output that no later frame
  can change, so nothing is ever cross-faded or guessed at a chunk border;
- stages that run forward in time with a state (EnCodec's LSTM, codec v2's integrated phase): the
  state is carried from one chunk to the next (`Carry`), so they need no context at all.

Our EnCodec (encodec.py): quantizer (per frame) -> the first convolution (3 frames each side) ->
LSTM (state carried) -> the upsampling stack (its receptive field, `reach`: 1 frame each side for
MusicGen's 32 kHz codec and ours). A frame's audio is final once the 4 frames after it are known.
Codec v2 (codec_v2.py): quantizer -> the ConvNeXt decoder (27 frames each side) -> integrated
phase (carried, float64) -> inverse STFT (2 frames each side): 29 frames ahead.
The chunked output equals the one-shot decode up to float rounding (tests/test_streaming.py).
"""

from __future__ import annotations

import math

import torch

from .chunks import Carry, Chain, Map, Overlap
from .codec_v2 import BundledCodec
from .encodec import Conv, ConvTranspose, EnCodec, ResidualBlock


def reach(layers, hop: int = 1) -> tuple[int, int]:
    """(frames before, frames after) a frame that the output of `layers` (our EnCodec's decoder layers,
    stride-1 convolutions and transposed convolutions, at one input sample a frame; `hop` output
    samples a frame) is computed from: each layer's index arithmetic, followed back from one frame's
    output samples to the input (the activations between do not widen it)."""
    frame = 100  # any frame away from the ends
    lo, hi = _needs(list(layers), frame * hop, (frame + 1) * hop - 1)
    return frame - lo, hi - frame


def _needs(layers: list, lo: int, hi: int) -> tuple[int, int]:
    for layer in reversed(layers):
        if isinstance(layer, ResidualBlock):
            lo, hi = _needs(list(layer.block), lo, hi)  # its shortcut is 1 x 1: within that
        elif isinstance(layer, Conv):
            if layer.stride != 1:
                raise ValueError("only stride-1 convolutions decode")
            total = layer.span - 1
            left = total if layer.causal else total - total // 2
            lo, hi = lo - left, hi - left + total
        elif isinstance(layer, ConvTranspose):
            k, s = layer.conv.kernel_size[0], layer.conv.stride[0]
            lo, hi = (lo + layer.left - k) // s + 1, (hi + layer.left) // s  # raw output o needs o - k < i * s <= o
    return lo, hi


def encodec_stream(model: EnCodec) -> Chain:
    layers = model.decoder.layers
    first, lstm, rest = layers[0], layers[1], layers[2:]

    def upsample(x: torch.Tensor) -> torch.Tensor:
        for layer in rest:
            x = layer(x)
        return x

    return Chain(Map(model.quantizer.decode), Overlap(first, *reach([first])), Carry(lstm.run),
                 Overlap(upsample, *reach(rest, model.hop_length), model.hop_length))


def bundled_stream(model: BundledCodec) -> Chain:
    c, net = model.config, model.decoder
    reach = net.inp.kernel_size[0] // 2 + sum(b.dw.kernel_size[0] // 2 for b in net.blocks)
    istft = math.ceil(c.dec_fft / 2 / c.hop_length)  # frames whose windows reach a sample of frame t

    def quantized(codes: torch.Tensor) -> torch.Tensor:
        return model.quantizer.decode(codes.long().transpose(0, 1))

    return Chain(Map(quantized), Overlap(net, reach, reach), Carry(model.spectrum),
                 Overlap(lambda spec: model.inverse(spec, spec.shape[-1] * c.hop_length), istft, istft, c.hop_length))


def stream(model) -> Chain:
    """A chunked decoder for one channel of `model`: push(codes [B, K, n]) -> audio [B, 1, m] or None."""
    if isinstance(model, EnCodec):
        return encodec_stream(model)
    if isinstance(model, BundledCodec):
        return bundled_stream(model)
    raise TypeError(f"no chunked decoding for {type(model).__name__}")
