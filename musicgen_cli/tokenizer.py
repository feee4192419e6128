"""The T5 tokenizer without transformers: the same ids as its T5Tokenizer from the same folder.

    tokenizer = T5Tokenizer.from_folder(folder)
    ids, mask = tokenizer(["lo-fi jazz", ""])     # [B, L] each, right-padded with the pad id (0)

A folder's `tokenizer.json` is read with the `tokenizers` library; without one, `spiece.model` with
`sentencepiece`. Either way each text ends with the end-of-sequence id `</s>` (no start id), as
T5's tokenizer does; nothing is truncated (T5's relative positions take any length). `</s>`, `<pad>`
and `<unk>` written in a text are those tokens, as in transformers.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

import torch

from .errors import MusicgenError

EOS, PAD, UNK = "</s>", "<pad>", "<unk>"


class T5Tokenizer:
    def __init__(self, encode: Callable[[list[str]], list[list[int]]], pad_id: int, source: Path):
        """encode: texts -> ids, each ending with the end-of-sequence id."""
        self.encode = encode
        self.pad_id = pad_id
        self.source = source

    @classmethod
    def from_folder(cls, folder: str | Path) -> "T5Tokenizer":
        folder = Path(folder)
        try:
            if (folder / "tokenizer.json").is_file():
                return cls._from_tokenizer_json(folder / "tokenizer.json")
            if (folder / "spiece.model").is_file():
                return cls._from_sentencepiece(folder / "spiece.model")
        except MusicgenError:
            raise
        except Exception as e:
            detail = (str(e).splitlines() or [type(e).__name__])[0]
            raise MusicgenError(f"cannot load the T5 tokenizer from {folder}: {detail}") from e
        raise MusicgenError(f"no T5 tokenizer in {folder} (tokenizer.json or spiece.model)")

    @classmethod
    def _from_tokenizer_json(cls, path: Path) -> "T5Tokenizer":
        from tokenizers import Tokenizer, processors

        tok = Tokenizer.from_file(str(path))
        eos, pad = tok.token_to_id(EOS), tok.token_to_id(PAD)
        if eos is None:
            raise MusicgenError(f"{path} has no end-of-sequence token {EOS}")
        tok.no_padding()  # we pad ourselves; transformers ignores a file's padding and truncation too
        tok.no_truncation()
        tok.post_processor = processors.TemplateProcessing(single=["$A", EOS], special_tokens=[(EOS, eos)])
        return cls(lambda texts: [e.ids for e in tok.encode_batch(texts)], 0 if pad is None else pad, path)

    @classmethod
    def _from_sentencepiece(cls, path: Path) -> "T5Tokenizer":
        import sentencepiece

        sp = sentencepiece.SentencePieceProcessor(model_file=str(path))
        special = {piece: sp.piece_to_id(piece) for piece in (PAD, EOS, UNK)}
        special = {piece: i for piece, i in special.items() if sp.id_to_piece(i) == piece}
        if EOS not in special:
            raise MusicgenError(f"{path} has no end-of-sequence token {EOS}")
        # transformers' tokenizer reads a special token's text in a prompt as that token, and the
        # text around it piece by piece
        split = re.compile("(" + "|".join(map(re.escape, special)) + ")")

        def encode(texts: list[str]) -> list[list[int]]:
            out = []
            for text in texts:
                parts = split.split(text)  # odd indices: special tokens
                ids = [[special[part]] if k % 2 else sp.encode(part) for k, part in enumerate(parts) if part]
                out.append(sum(ids, []) + [special[EOS]])
            return out

        return cls(encode, special.get(PAD, 0), path)

    def __call__(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """texts -> (ids [B, L] int64, attention mask [B, L] int64: 1 for tokens, 0 for padding);
        L is the longest text's length."""
        encoded = self.encode(list(texts))
        length = max(len(ids) for ids in encoded)
        ids = torch.full((len(encoded), length), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(encoded), length), dtype=torch.long)
        for row, seq in enumerate(encoded):
            ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
            mask[row, : len(seq)] = 1
        return ids, mask
