"""Stage 4: write the trained model as a Hugging Face MusicGen folder (the layout our loader reads).

config.json + model.safetensors (save_pretrained), generation_config.json (sampling defaults; its
``max_length`` is the model's window in frames), preprocessor_config.json and the tokenizer files.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .. import codec_v2
from . import lm as lm_stage
from . import text

# facebook/musicgen-melody's preprocessor_config.json (the chroma extractor), written as JSON: building a
# MusicgenMelodyFeatureExtractor needs torchaudio.
MELODY_PREPROCESSOR_CONFIG = {
    "chunk_length": 30, "feature_extractor_type": "MusicgenMelodyFeatureExtractor", "feature_size": 12,
    "hop_length": 4096, "n_fft": 16384, "num_chroma": 12, "padding_side": "right", "padding_value": 0.0,
    "processor_class": "MusicgenMelodyProcessor", "return_attention_mask": False, "sampling_rate": 32000,
    "stem_indices": [3, 2],
}


def save_hf_folder(model, folder: str | Path, tokenizer_proto: bytes, *, max_length: int = 1500,
                   top_k: int | None = 250, guidance_scale: float = 3.0) -> Path:
    """``model``: a transformers MusicgenForConditionalGeneration or MusicgenMelodyForConditionalGeneration."""
    from transformers import EncodecFeatureExtractor, GenerationConfig

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    card = model.config.decoder.vocab_size
    model.generation_config = GenerationConfig(
        decoder_start_token_id=card, pad_token_id=card, bos_token_id=card, guidance_scale=guidance_scale,
        max_length=max_length, do_sample=True, **({"top_k": top_k} if top_k is not None else {}))
    model.save_pretrained(str(folder), safe_serialization=True)
    if model.config.model_type == "musicgen_melody":
        (folder / "preprocessor_config.json").write_text(json.dumps(MELODY_PREPROCESSOR_CONFIG, indent=2) + "\n")
    else:
        EncodecFeatureExtractor(feature_size=model.config.decoder.audio_channels,
                                sampling_rate=model.config.audio_encoder.sampling_rate, padding_value=0.0,
                                padding_side="left", return_attention_mask=True).save_pretrained(str(folder))
    text.write_tokenizer(folder, tokenizer_proto)
    return folder


def export(lm_dir: str | Path, codec_folder: str | Path, folder: str | Path) -> Path:
    """The LM stage's last checkpoint (with its tokenizer and the codec) -> a loadable folder."""
    lm_dir = Path(lm_dir)
    proto = (lm_dir / "tokenizer" / "spiece.model").read_bytes()
    hparams = json.loads((lm_dir / "hparams.json").read_text())
    model = lm_stage.build_model(codec_folder, text.vocab_size(proto), dropout=0.0, **hparams)
    state = torch.load(lm_dir / "checkpoint.pt", map_location="cpu", weights_only=True)["model"]
    model.load_state_dict(state)
    folder = save_hf_folder(model.eval(), folder, proto, max_length=lm_stage.FRAMES)
    if lm_stage.codec_config(codec_folder).get("model_type") == codec_v2.MODEL_TYPE:
        put_second_codec(folder, codec_folder)
    return folder


def put_second_codec(folder: Path, codec_folder: str | Path) -> None:
    """Swap the stand-in EnCodec that training carried for the second codec: its config as the folder's
    audio_encoder, its tensors under ``audio_encoder.``. Everything is stored in float16 (the loader
    computes in float32 whatever the file stores), so the package stays small."""
    from safetensors.torch import load_file, save_file

    codec = codec_v2.BundledCodec.load(codec_folder)
    config = json.loads((folder / "config.json").read_text())
    config["audio_encoder"] = json.loads((Path(codec_folder) / "config.json").read_text())
    state = {k: v for k, v in load_file(folder / "model.safetensors").items() if not k.startswith("audio_encoder.")}
    state.update({f"audio_encoder.{k}": v for k, v in codec.inference_state().items()})
    state = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in state.items()}
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
