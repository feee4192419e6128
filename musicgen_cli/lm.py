"""The MusicGen language model: a pre-LayerNorm transformer decoder over K parallel codebooks.

Parameter names follow the Hugging Face checkpoints (minus their `decoder.model.decoder.` prefix),
so a checkpoint's tensors load as they are. The self-attention keys and values live in a
preallocated cache written at absolute positions.

Two kinds of conditioning, set by `set_conditioning`:
- text-to-music models cross-attend to the projected text states (their keys and values are
  computed once per generation);
- melody models have no cross-attention: the projected chroma frames and text states are a prefix
  before the audio tokens, [chroma | text | tokens], with positions running over all of it. The
  prefix enters the cache with the first forward call of each window (start == 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class LMConfig:
    dim: int = 1024
    num_layers: int = 24
    num_heads: int = 16
    ffn_dim: int = 4096
    num_codebooks: int = 4
    card: int = 2048  # codebook size; the id `card` is the special (start / pad) token
    text_dim: int = 768  # width of the text encoder's states, projected to `dim`
    channels: int = 1  # 2 for stereo checkpoints (codebooks interleaved L, R)
    num_chroma: int = 0  # melody models: 12 chroma bins, prepended with the text (no cross-attention)
    chroma_length: int = 0  # melody models: chroma frames in the prefix (235 = 30 s)

    @property
    def melody(self) -> bool:
        return self.num_chroma > 0

    @property
    def special(self) -> int:
        return self.card


def sinusoidal_positions(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """[S] positions -> [S, dim] embeddings: cat(cos(p * f), sin(p * f)), f_i = 10000^(-i / (dim/2 - 1))."""
    half = dim // 2
    freqs = torch.exp(torch.arange(half, device=positions.device, dtype=torch.float32) * -(math.log(10000.0) / (half - 1)))
    angles = positions.float()[:, None] * freqs[None, :]
    return torch.cat([angles.cos(), angles.sin()], dim=-1)


def each_row(fn, x: torch.Tensor, lengths: list[int]) -> torch.Tensor:
    """fn on each batch row's first lengths[i] positions of x [B, L, d] alone, zeros after them.

    A row's result then does not depend on the rows beside it or on its padding: a batched matrix
    product rounds differently from one row's (MKL picks another kernel for more rows), and a
    sampled piece would not be the same as its seed alone. Conditioning runs once per window."""
    out = None
    for row, n in enumerate(lengths):
        y = fn(x[row : row + 1, :n])
        if out is None:
            out = y.new_zeros(x.shape[0], x.shape[1], y.shape[-1])
        out[row, :n] = y[0]
    return out


class KVCache(nn.Module):
    """Preallocated keys and values [B, heads, max_len, head_dim], written at absolute positions."""

    def __init__(self, batch: int, heads: int, max_len: int, head_dim: int, dtype, device):
        super().__init__()
        shape = (batch, heads, max_len, head_dim)
        self.register_buffer("k", torch.zeros(shape, dtype=dtype, device=device), persistent=False)
        self.register_buffer("v", torch.zeros(shape, dtype=dtype, device=device), persistent=False)

    def update(self, start: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        end = start + k.shape[2]
        self.k[:, :, start:end] = k
        self.v[:, :, start:end] = v
        return self.k[:, :, :end], self.v[:, :, :end]


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q_proj = nn.Linear(dim, dim, bias=False)
        self.k_proj = nn.Linear(dim, dim, bias=False)
        self.v_proj = nn.Linear(dim, dim, bias=False)
        self.out_proj = nn.Linear(dim, dim, bias=False)

    def split(self, x: torch.Tensor) -> torch.Tensor:  # [B, S, dim] -> [B, heads, S, head_dim]
        b, s, _ = x.shape
        return x.view(b, s, self.heads, -1).transpose(1, 2)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        out = F.scaled_dot_product_attention(self.split(q), k, v, attn_mask=mask)
        b, h, s, d = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, s, h * d))


class Block(nn.Module):
    def __init__(self, cfg: LMConfig):
        super().__init__()
        self.self_attn = Attention(cfg.dim, cfg.num_heads)
        self.self_attn_layer_norm = nn.LayerNorm(cfg.dim)
        self.cross = not cfg.melody
        if self.cross:
            self.encoder_attn = Attention(cfg.dim, cfg.num_heads)
            self.encoder_attn_layer_norm = nn.LayerNorm(cfg.dim)
        self.fc1 = nn.Linear(cfg.dim, cfg.ffn_dim, bias=False)
        self.fc2 = nn.Linear(cfg.ffn_dim, cfg.dim, bias=False)
        self.final_layer_norm = nn.LayerNorm(cfg.dim)
        self.cache: KVCache | None = None
        self.cross_kv: tuple[torch.Tensor, torch.Tensor] | None = None

    def forward(self, x: torch.Tensor, start: int, self_mask, cross_mask) -> torch.Tensor:
        attn = self.self_attn
        h = self.self_attn_layer_norm(x)
        k, v = self.cache.update(start, attn.split(attn.k_proj(h)), attn.split(attn.v_proj(h)))
        x = x + attn.attend(attn.q_proj(h), k, v, self_mask)
        if self.cross:
            h = self.encoder_attn_layer_norm(x)
            x = x + self.encoder_attn.attend(self.encoder_attn.q_proj(h), *self.cross_kv, cross_mask)
        return x + self.fc2(F.gelu(self.fc1(self.final_layer_norm(x))))


class MusicGenLM(nn.Module):
    def __init__(self, cfg: LMConfig):
        super().__init__()
        self.cfg = cfg
        # no random init of the tables (the checkpoint's are assigned; normal_ on the meta device would
        # import torch._dynamo, 1.8 s of the start-up here)
        shape = (cfg.card + 1, cfg.dim)
        self.embed_tokens = nn.ModuleList(nn.Embedding(*shape, _weight=torch.empty(shape)) for _ in range(cfg.num_codebooks))
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.num_layers))
        self.layer_norm = nn.LayerNorm(cfg.dim)
        self.lm_heads = nn.ModuleList(nn.Linear(cfg.dim, cfg.card, bias=False) for _ in range(cfg.num_codebooks))
        self.enc_to_dec_proj = nn.Linear(cfg.text_dim, cfg.dim)
        if cfg.melody:
            self.audio_enc_to_dec_proj = nn.Linear(cfg.num_chroma, cfg.dim)
        self.cross_mask: torch.Tensor | None = None
        self.prefix: torch.Tensor | None = None  # melody models: [B, chroma + text, dim]

    @property
    def prefix_len(self) -> int:
        return 0 if self.prefix is None else self.prefix.shape[1]

    def setup_caches(self, batch: int, max_len: int) -> None:
        """Caches for `max_len` columns of tokens (plus the conditioning prefix, if any)."""
        p = self.layer_norm.weight
        head_dim = self.cfg.dim // self.cfg.num_heads
        for layer in self.layers:
            layer.cache = KVCache(batch, self.cfg.num_heads, self.prefix_len + max_len, head_dim, p.dtype, p.device)

    def set_conditioning(self, text_states: torch.Tensor, text_mask: torch.Tensor, chroma: torch.Tensor | None = None) -> None:
        """Project the text encoder's states [B, L, text_dim] (padding where text_mask [B, L] is 0).

        Text-to-music models: compute every layer's cross-attention keys and values once.
        Melody models: the prefix [projected chroma [B, chroma_length, 12] | projected text]."""
        p = self.layer_norm.weight
        mask = text_mask.to(device=p.device, dtype=torch.bool)
        lengths = mask.sum(dim=1).tolist()
        if not torch.equal(mask, torch.arange(mask.shape[1], device=mask.device)[None, :] < mask.sum(dim=1, keepdim=True)):
            raise ValueError("text masks must be right-padded: each row's tokens first, then its padding")
        states = each_row(self.enc_to_dec_proj, text_states.to(p), lengths)  # zero over the padding
        if self.cfg.melody:
            if chroma is None or chroma.shape[:2] != (states.shape[0], self.cfg.chroma_length):
                raise ValueError(f"a melody model needs chroma [batch, {self.cfg.chroma_length}, {self.cfg.num_chroma}]")
            chroma = each_row(self.audio_enc_to_dec_proj, chroma.to(p), [chroma.shape[1]] * chroma.shape[0])
            self.prefix = torch.cat([chroma, states], dim=1)
            return
        for layer in self.layers:
            attn = layer.encoder_attn
            layer.cross_kv = tuple(attn.split(each_row(proj, states, lengths)) for proj in (attn.k_proj, attn.v_proj))
        # Additive mask over the text keys. A row with no text at all (the unconditional row of
        # guidance) then attends uniformly to all-zero values: its cross-attention output is zero.
        self.cross_mask = torch.zeros(mask.shape, dtype=p.dtype, device=p.device).masked_fill(
            ~mask, torch.finfo(p.dtype).min
        )[:, None, None, :]

    def forward(self, codes: torch.Tensor, start: int, last_only: bool = False) -> torch.Tensor:
        """codes [B, K, S] at columns start..start+S-1 -> logits [B, K, S (or 1), card].

        With a prefix (melody models), column c sits at position prefix_len + c, and the call with
        start == 0 runs the prefix first."""
        x = sum(emb(codes[:, q]) for q, emb in enumerate(self.embed_tokens))
        if self.prefix is not None:
            if start == 0:
                x = torch.cat([self.prefix.to(x.dtype), x], dim=1)
            else:
                start += self.prefix_len
        s = x.shape[1]
        positions = torch.arange(start, start + s, device=codes.device)
        x = x + sinusoidal_positions(positions, self.cfg.dim).to(x.dtype)
        self_mask = None
        if s > 1:  # causal over the cache: query i sees keys 0 .. start + i
            keys = torch.arange(start + s, device=codes.device)
            self_mask = keys[None, :] <= positions[:, None]
        for layer in self.layers:
            x = layer(x, start, self_mask, self.cross_mask)
        x = self.layer_norm(x[:, -1:] if last_only else x[:, s - codes.shape[2] :])
        return torch.stack([head(x) for head in self.lm_heads], dim=1)
