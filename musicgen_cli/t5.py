"""The T5 text encoder in plain torch, read from Hugging Face T5 weights (no transformers import).

    encoder = T5Encoder(T5Config.from_hf(config["text_encoder"]))
    encoder.load_state_dict(T5Encoder.hf_state(state), assign=True)   # see checkpoints._build_module
    states = encoder(input_ids, attention_mask)                        # [B, L, d_model]

Architecture (t5-base and T5 v1.1 alike): token embedding (no scaling) -> blocks of
[RMS norm -> self-attention, residual] and [RMS norm -> feed-forward, residual] -> RMS norm.
Attention scores are not scaled by 1/sqrt(d); instead a learned bias per (head, relative-position
bucket), stored in the first block and shared by all, is added to them. The feed-forward is
`relu` (t5-base) or gated (`gated-gelu`: gelu with the tanh approximation, times a linear gate).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .errors import MusicgenError

ACTIVATIONS = {
    "relu": F.relu,
    "gelu": F.gelu,  # exact (erf)
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "silu": F.silu,
}


@dataclass(frozen=True)
class T5Config:
    vocab_size: int = 32128
    d_model: int = 768
    d_kv: int = 64
    d_ff: int = 3072
    num_layers: int = 12
    num_heads: int = 12
    num_buckets: int = 32
    max_distance: int = 128
    eps: float = 1e-6
    activation: str = "relu"
    gated: bool = False

    @classmethod
    def from_hf(cls, config: dict) -> "T5Config":
        """The `text_encoder` part of a MusicGen config.json (or a T5 folder's config.json). The
        feed-forward follows `feed_forward_proj` ("relu", "gated-gelu", "[gated-]ACT"), unless the
        config also spells out `dense_act_fn` / `is_gated_act`, which win (as in transformers)."""
        proj = config.get("feed_forward_proj", "relu")
        parts = proj.split("-")
        if len(parts) > 2 or (len(parts) == 2 and parts[0] != "gated"):
            raise MusicgenError(f"the text encoder's feed_forward_proj '{proj}' is not supported")
        gated = config.get("is_gated_act", parts[0] == "gated" and len(parts) == 2)
        activation = config.get("dense_act_fn", "gelu_new" if proj == "gated-gelu" else parts[-1])
        if activation not in ACTIVATIONS:
            raise MusicgenError(f"the text encoder's activation '{activation}' is not supported "
                                f"({', '.join(ACTIVATIONS)})")
        try:
            return cls(
                vocab_size=config["vocab_size"],
                d_model=config["d_model"],
                d_kv=config["d_kv"],
                d_ff=config["d_ff"],
                num_layers=config["num_layers"],
                num_heads=config["num_heads"],
                num_buckets=config.get("relative_attention_num_buckets", 32),
                max_distance=config.get("relative_attention_max_distance", 128),
                eps=config.get("layer_norm_epsilon", 1e-6),
                activation=activation,
                gated=gated,
            )
        except KeyError as e:
            raise MusicgenError(f"the text encoder's config has no '{e.args[0]}'") from e


class RMSNorm(nn.Module):
    """T5's layer norm: scale only, no mean subtraction, no bias; statistics in float32."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        variance = x.float().pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(variance + self.eps)).to(self.weight.dtype)


class Attention(nn.Module):
    def __init__(self, cfg: T5Config):
        super().__init__()
        inner = cfg.num_heads * cfg.d_kv
        self.heads = cfg.num_heads
        self.q = nn.Linear(cfg.d_model, inner, bias=False)
        self.k = nn.Linear(cfg.d_model, inner, bias=False)
        self.v = nn.Linear(cfg.d_model, inner, bias=False)
        self.o = nn.Linear(inner, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """x [B, L, d]; bias [B or 1, heads, L, L] (positions + padding mask), added to unscaled scores."""
        b, length, _ = x.shape

        def heads(t):
            return t.view(b, length, self.heads, -1).transpose(1, 2)

        out = F.scaled_dot_product_attention(heads(self.q(x)), heads(self.k(x)), heads(self.v(x)),
                                             attn_mask=bias, scale=1.0)
        return self.o(out.transpose(1, 2).reshape(b, length, -1))


class FeedForward(nn.Module):
    """wo(act(wi(x))), or gated: wo(act(wi_0(x)) * wi_1(x))."""

    def __init__(self, cfg: T5Config):
        super().__init__()
        self.act = ACTIVATIONS[cfg.activation]
        self.gated = cfg.gated
        if cfg.gated:
            self.wi_0 = nn.Linear(cfg.d_model, cfg.d_ff, bias=False)
            self.wi_1 = nn.Linear(cfg.d_model, cfg.d_ff, bias=False)
        else:
            self.wi = nn.Linear(cfg.d_model, cfg.d_ff, bias=False)
        self.wo = nn.Linear(cfg.d_ff, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gated:
            return self.wo(self.act(self.wi_0(x)) * self.wi_1(x))
        return self.wo(self.act(self.wi(x)))


class Block(nn.Module):
    def __init__(self, cfg: T5Config):
        super().__init__()
        self.attn_norm = RMSNorm(cfg.d_model, cfg.eps)
        self.attn = Attention(cfg)
        self.ff_norm = RMSNorm(cfg.d_model, cfg.eps)
        self.ff = FeedForward(cfg)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), bias)
        return x + self.ff(self.ff_norm(x))


def relative_buckets(length: int, num_buckets: int, max_distance: int, device=None) -> torch.Tensor:
    """[L, L] bucket of (key position - query position), bidirectional: half of the buckets for keys
    after the query; in each half, exact distances below num_buckets / 4, then logarithmic bins up
    to max_distance (farther ones share the last bin)."""
    pos = torch.arange(length, device=device)
    rel = pos[None, :] - pos[:, None]
    half = num_buckets // 2
    exact = half // 2
    distance = rel.abs()
    log_bin = exact + (torch.log(distance.float() / exact) / math.log(max_distance / exact) * (half - exact)).long()
    log_bin = log_bin.clamp(max=half - 1)
    return (rel > 0).long() * half + torch.where(distance < exact, distance, log_bin)


def _table(rows: int, dim: int) -> nn.Embedding:
    """An embedding table without random init: its tensor is always loaded (and normal_ on the meta
    device, where checkpoints._build_module builds us, would import torch._dynamo: 1.8 s here)."""
    return nn.Embedding(rows, dim, _weight=torch.empty(rows, dim))


class T5Encoder(nn.Module):
    config_class = T5Config

    def __init__(self, cfg: T5Config):
        super().__init__()
        self.cfg = cfg
        self.embed = _table(cfg.vocab_size, cfg.d_model)
        self.position_bias = _table(cfg.num_buckets, cfg.num_heads)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.num_layers))
        self.final_norm = RMSNorm(cfg.d_model, cfg.eps)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """input_ids [B, L], attention_mask [B, L] (0 marks padding) -> last hidden state [B, L, d_model]."""
        x = self.embed(input_ids)
        buckets = relative_buckets(input_ids.shape[1], self.cfg.num_buckets, self.cfg.max_distance, x.device)
        bias = self.position_bias(buckets).permute(2, 0, 1)[None].to(x.dtype)  # [1, heads, L, L]
        if attention_mask is not None:
            padding = attention_mask[:, None, None, :] == 0
            bias = bias.masked_fill(padding, torch.finfo(x.dtype).min)
        for block in self.blocks:
            x = block(x, bias)
        return self.final_norm(x)

    _HF_NAMES = [  # Hugging Face T5EncoderModel names (text_encoder. prefix dropped) -> ours
        (r"^(shared|encoder\.embed_tokens)\.", "embed."),
        (r"^encoder\.block\.0\.layer\.0\.SelfAttention\.relative_attention_bias\.", "position_bias."),
        (r"^encoder\.block\.(\d+)\.layer\.0\.SelfAttention\.", r"blocks.\1.attn."),
        (r"^encoder\.block\.(\d+)\.layer\.0\.layer_norm\.", r"blocks.\1.attn_norm."),
        (r"^encoder\.block\.(\d+)\.layer\.1\.DenseReluDense\.", r"blocks.\1.ff."),
        (r"^encoder\.block\.(\d+)\.layer\.1\.layer_norm\.", r"blocks.\1.ff_norm."),
        (r"^encoder\.final_layer_norm\.", "final_norm."),
    ]

    @classmethod
    def hf_state(cls, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Hugging Face T5 encoder tensors -> ours. The embedding may be stored as `shared`, as
        `encoder.embed_tokens` or both (tied: the same table); names that match no rule are kept
        as they are, so that loading reports them as unexpected."""
        out = {}
        for key, value in state.items():
            for pattern, repl in cls._HF_NAMES:
                new = re.sub(pattern, repl, key)
                if new != key:
                    key = new
                    break
            out[key] = value
        return out
