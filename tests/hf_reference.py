"""transformers as the reference: the codes its `generate` hands to the codec."""

import torch


def hf_generate(model, inputs: dict, **generate_kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """Run transformers' MusicGen (or MusicGen-melody) `generate` -> (codes [B, K, frames] in the
    decoder's codebook order, waveform). Stereo models decode the left codebooks (0, 2, ...) and
    the right ones (1, 3, ...) in two calls; they are interleaved back here."""
    captured = []
    decode = model.audio_encoder.decode

    def spy(audio_codes, *args, **kwargs):
        captured.append(audio_codes[0].clone())
        return decode(audio_codes, *args, **kwargs)

    model.audio_encoder.decode = spy
    try:
        with torch.no_grad():
            wav = model.generate(**inputs, **generate_kwargs)
    finally:
        del model.audio_encoder.decode
    codes = captured[0] if len(captured) == 1 else torch.stack(captured, dim=2).flatten(1, 2)
    return codes, wav
