"""The text side: a T5-style sentencepiece tokenizer trained on captions, and a small T5 encoder config.

``train_tokenizer(sentences, vocab_size)`` returns the model bytes; ``write_tokenizer(folder, proto)``
writes ``spiece.model``, ``tokenizer.json`` and ``tokenizer_config.json`` that
``AutoTokenizer.from_pretrained`` loads offline (no protobuf package needed: a few lines below read the
one protobuf field transformers wants). Conventions as t5-base: pad 0, eos 1 appended, unk 2, no bos.
"""

from __future__ import annotations

import io
import json
from pathlib import Path


def train_tokenizer(sentences: list[str], vocab_size: int) -> bytes:
    """A unigram sentencepiece model over ``sentences``; deterministic for the same input."""
    import sentencepiece as spm

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_writer=buf,
        model_type="unigram",
        vocab_size=vocab_size,
        hard_vocab_limit=False,
        character_coverage=1.0,
        normalization_rule_name="nmt_nfkc",  # as t5's spiece.model
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
        pad_piece="<pad>", eos_piece="</s>", unk_piece="<unk>",
        num_threads=1,
        minloglevel=2,
    )
    return buf.getvalue()


def vocab_size(proto: bytes) -> int:
    import sentencepiece as spm

    return spm.SentencePieceProcessor(model_proto=proto).get_piece_size()


def write_tokenizer(folder: str | Path, proto: bytes) -> None:
    """spiece.model + the transformers tokenizer files (tokenizer_class T5Tokenizer) into ``folder``."""
    import sentencepiece as spm
    from transformers import T5Tokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sp = spm.SentencePieceProcessor(model_proto=proto)
    vocab = [(sp.id_to_piece(i), float(sp.get_score(i))) for i in range(sp.get_piece_size())]
    tok = T5Tokenizer(vocab=vocab, _spm_precompiled_charsmap=_precompiled_charsmap(proto), extra_ids=0,
                      model_max_length=512)
    tok.save_pretrained(str(folder))
    (folder / "spiece.model").write_bytes(proto)
    cfg_path = folder / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["tokenizer_class"] = "T5Tokenizer"
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def t5_config(vocab: int, dim: int, layers: int, heads: int, ffn: int):
    """A T5 encoder config (relu feed-forward, relative position buckets, as t5-base)."""
    from transformers import T5Config

    return T5Config(vocab_size=vocab, d_model=dim, d_kv=dim // heads, d_ff=ffn, num_layers=layers,
                    num_decoder_layers=layers, num_heads=heads, relative_attention_num_buckets=32,
                    relative_attention_max_distance=128, dropout_rate=0.0, layer_norm_epsilon=1e-6,
                    feed_forward_proj="relu", pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)


def _protobuf_fields(data: bytes):
    """Minimal protobuf wire-format reader: yields (field_number, wire_type, value)."""
    pos = 0

    def varint():
        nonlocal pos
        shift = result = 0
        while True:
            b = data[pos]
            pos += 1
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7

    while pos < len(data):
        key = varint()
        field, wire = key >> 3, key & 7
        if wire == 0:
            yield field, wire, varint()
        elif wire == 1:
            yield field, wire, data[pos:pos + 8]
            pos += 8
        elif wire == 2:
            n = varint()
            yield field, wire, data[pos:pos + n]
            pos += n
        elif wire == 5:
            yield field, wire, data[pos:pos + 4]
            pos += 4
        else:  # pragma: no cover - groups are not used by sentencepiece
            raise ValueError(f"unsupported protobuf wire type {wire}")


def _precompiled_charsmap(model_proto: bytes) -> bytes | None:
    # ModelProto.normalizer_spec = field 3; NormalizerSpec.precompiled_charsmap = field 2.
    for field, wire, value in _protobuf_fields(model_proto):
        if field == 3 and wire == 2:
            for f2, w2, v2 in _protobuf_fields(value):
                if f2 == 2 and w2 == 2:
                    return bytes(v2) or None
    return None
