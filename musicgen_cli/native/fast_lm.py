"""The decode-time form of a MusicGenLM: the same network, arranged for one step at a time.

- the self-attention q, k and v projections are one product (one pass over their weights);
- the K codebook embeddings are one table and the K output heads one product;
- weights are float32, bfloat16 or int8 with a float32 scale per block of 32 values of a row
  (symmetric, round-to-nearest: quantise_blocks), and on the CPU go through kernels/gemv.h, which
  reads each weight once for every row of the step (the guidance rows included); int8 products
  round their inputs to 14-bit integers (a float scale per row) as they go;
- one static KV cache [layers, rows, heads, length, head_dim] for every layer, written at
  positions held in a tensor, so that a step has fixed shapes and can be captured as a CUDA graph;
  on the CPU it holds int8 with a float scale per head and position for the lossy dtypes
  (bfloat16 and int8: attention late in a window reads a quarter of float32's bytes), float32
  for float32;
- on the CPU, a decode step (one new column) is one call into kernels/decode_step.cpp, which runs
  every layer, norms, attention and GELU included; a prefill goes through PyTorch.

It reads the conditioning (cross-attention keys and values, or a melody model's prefix) that
`MusicGenLM.set_conditioning` computed, so both paths always see the same conditioning.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..lm import MusicGenLM, sinusoidal_positions

from . import cpu

DTYPES = ("float32", "bfloat16", "int8")
I8_BLOCK = 32  # int8 weights: a scale per this many values of a row (gemv.h's I8_BLOCK)
# decode_step.cpp's pointer table: these entries per layer (its `Slot` order), then FINAL_SLOTS
LAYER_SLOTS = ("norm1_w", "norm1_b", "qkv", "qkv_s", "out", "out_s",
               "norm2_w", "norm2_b", "cross_q", "cross_q_s", "cross_out", "cross_out_s", "cross_k", "cross_v",
               "norm3_w", "norm3_b", "fc1", "fc1_s", "fc2", "fc2_s", "cache_k", "cache_v", "cache_k_s", "cache_v_s")
FINAL_SLOTS = ("norm_w", "norm_b", "heads", "heads_s", "cross_mask")
CACHE_TYPES = (torch.float32, torch.int8)  # decode_step.cpp's `Cache` order


class Weight:
    """One linear layer's weight [N, K] in the chosen dtype; `self(x)` is x @ weight.T."""

    def __init__(self, w: torch.Tensor, dtype: str, lib):
        fits = w.shape[1] % cpu.CHUNK[dtype] == 0  # gemv.h reads rows in chunks of 32 bytes or more
        self.lib = lib if w.device.type == "cpu" and fits else None
        self.scale = None
        if dtype == "int8":
            self.w, self.scale = quantise_blocks(w)
        else:
            self.w = w.to(getattr(torch, dtype)).contiguous()

    def dense(self, dtype: torch.dtype) -> torch.Tensor:
        if self.scale is not None:
            blocks = in_blocks(self.w, self.scale.shape[1]) * self.scale[..., None]
            return blocks.flatten(1)[:, : self.w.shape[1]].to(dtype)
        return self.w.to(dtype)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.lib is not None and x.numel() <= 8 * x.shape[-1]:  # a decode step: a few rows
            return cpu.linear(self.lib, x, self.w, self.scale)
        return F.linear(x, self.dense(x.dtype))  # prefill: a real matrix product


class FastLM:
    def __init__(self, lm: MusicGenLM, dtype: str = "float32", release: bool = False, isa: str | None = None):
        """release: free the lm's own copies of the weights packed here (the lm's forward then no
        longer works; its conditioning still does), so the model is not held twice in memory.
        isa: which build of the CPU kernels (cpu.py; None: the best this CPU runs)."""
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}")
        self.lm, self.cfg = lm, lm.cfg
        device = lm.layer_norm.weight.device
        lib = cpu.library(isa) if device.type == "cpu" else None
        # the activations: float32 on the CPU; on a GPU, bfloat16 when the weights are
        self.act = torch.bfloat16 if dtype == "bfloat16" and device.type == "cuda" else torch.float32

        def weight(*linears) -> Weight:
            packed = Weight(torch.cat([m.weight for m in linears]), dtype, lib)
            for m in linears if release else ():
                m.weight = torch.nn.Parameter(m.weight.new_empty(0), requires_grad=False)
            return packed

        self.layers = []
        for layer in lm.layers:
            a = layer.self_attn
            w = {"qkv": weight(a.q_proj, a.k_proj, a.v_proj), "out": weight(a.out_proj),
                 "fc1": weight(layer.fc1), "fc2": weight(layer.fc2)}
            if layer.cross:
                w["cross_q"], w["cross_out"] = weight(layer.encoder_attn.q_proj), weight(layer.encoder_attn.out_proj)
            self.layers.append(w)
        self.heads = weight(*lm.lm_heads)
        card = self.cfg.card + 1
        self.embed = torch.cat([e.weight for e in lm.embed_tokens]).to(self.act)  # [K * (card + 1), dim]
        self.offsets = torch.arange(self.cfg.num_codebooks, device=device)[None, :, None] * card
        self.k = self.v = self.k_scale = self.v_scale = self.position_table = None
        self.dtype, self.lib = dtype, lib
        self.fused = self.fused_step_fits()
        self.cache_dtype = torch.int8 if self.fused and dtype != "float32" else self.act
        self.step_table = None  # decode_step.cpp's pointers, for the current cache and conditioning

    def setup_cache(self, rows: int, columns: int) -> None:
        """Room for `columns` columns of tokens after the conditioning prefix (melody models)."""
        c = self.cfg
        shape = (c.num_layers, rows, c.num_heads, self.lm.prefix_len + columns, c.dim // c.num_heads)
        device = self.embed.device
        self.k = torch.zeros(shape, dtype=self.cache_dtype, device=device)
        self.v = torch.zeros(shape, dtype=self.cache_dtype, device=device)
        if self.cache_dtype == torch.int8:  # a scale per head and position
            self.k_scale, self.v_scale = (torch.zeros(shape[:-1], device=device) for _ in range(2))
        self.step_table = None
        self.position_table = None  # the steps' position embeddings, made at the first step

    def positions(self, start: int, columns: int) -> torch.Tensor:
        """Cache positions of columns start .. start + columns - 1 (the prefix comes first)."""
        first = start if start == 0 or self.lm.prefix is None else start + self.lm.prefix_len
        count = columns + (self.lm.prefix_len if start == 0 else 0)
        return torch.arange(first, first + count, device=self.embed.device)

    def __call__(self, codes: torch.Tensor, start: int) -> torch.Tensor:
        """codes [R, K, S] at columns start .. start + S - 1 -> logits [R, K, card] after the last one."""
        positions = self.positions(start, codes.shape[2])
        if codes.shape[2] == 1 and positions.shape[0] == 1 and self.fused:  # a step, or a one-column prefill
            return self.step(codes, positions)  # (each row's sums independent of the rows beside it)
        return self.forward(codes, positions, upto=int(positions[-1]) + 1)

    def forward(self, codes: torch.Tensor, positions: torch.Tensor, upto: int | None = None) -> torch.Tensor:
        """The network at cache `positions` [S'] (the prefix's too, when they start at 0).

        Attention reads the cache up to `upto`; None reads all of it with a mask (fixed shapes for
        graph capture: the positions may live in a device tensor)."""
        cfg, lm = self.cfg, self.lm
        x = self.embed_codes(codes)  # [R, S, dim]
        if positions.shape[0] > x.shape[1]:  # the first call of a melody window: prefix first
            x = torch.cat([lm.prefix.to(x.dtype), x], dim=1)
        x = x + sinusoidal_positions(positions, cfg.dim).to(x.dtype)
        length = self.k.shape[3] if upto is None else upto
        mask = None
        if upto is None or x.shape[1] > 1:
            mask = torch.arange(length, device=x.device)[None, :] <= positions[:, None]
        rows, s, heads = x.shape[0], x.shape[1], cfg.num_heads
        for i, (layer, w) in enumerate(zip(lm.layers, self.layers)):
            h = layer_norm(x, layer.self_attn_layer_norm)
            q, k, v = w["qkv"](h).view(rows, s, 3, heads, -1).permute(2, 0, 3, 1, 4)
            self.cache_write(i, positions, k, v)
            k, v = self.cache_read(i, length, q.dtype)
            att = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            x = x + w["out"](att.transpose(1, 2).reshape(rows, s, -1))
            if "cross_q" in w:
                h = layer_norm(x, layer.encoder_attn_layer_norm)
                q = w["cross_q"](h).view(rows, s, heads, -1).transpose(1, 2)
                k, v = (t.to(x.dtype) for t in layer.cross_kv)
                att = F.scaled_dot_product_attention(q, k, v, attn_mask=lm.cross_mask.to(x.dtype))
                x = x + w["cross_out"](att.transpose(1, 2).reshape(rows, s, -1))
            x = x + w["fc2"](F.gelu(w["fc1"](layer_norm(x, layer.final_layer_norm))))
        logits = self.heads(layer_norm(x[:, -1], lm.layer_norm))  # [R, K * card]
        return logits.view(rows, cfg.num_codebooks, cfg.card).float()

    def cache_write(self, layer: int, positions: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
        for cache, scales, t in ((self.k, self.k_scale, k), (self.v, self.v_scale, v)):
            if scales is not None:
                t, scale = quantise_rows(t)
                scales[layer].index_copy_(2, positions, scale)
            cache[layer].index_copy_(2, positions, t.to(cache.dtype))

    def cache_read(self, layer: int, length: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        def read(cache, scales):
            t = cache[layer, :, :, :length].to(dtype)
            return t if scales is None else t * scales[layer, :, :, :length, None].to(dtype)
        return read(self.k, self.k_scale), read(self.v, self.v_scale)

    def fused_step_fits(self) -> bool:
        """Whether decode steps can go through decode_step.cpp: every weight through the C++
        products, head width a multiple of 8 (the kernels' register width), one norm epsilon."""
        if self.lib is None or self.act != torch.float32:
            return False
        weights = [self.heads, *(w for layer in self.layers for w in layer.values())]
        norms = [m for m in self.lm.modules() if isinstance(m, torch.nn.LayerNorm)]
        c = self.cfg
        return (all(w.lib is not None for w in weights) and (c.dim // c.num_heads) % 8 == 0
                and len({m.eps for m in norms}) == 1)

    def embed_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [R, K, S] -> the sum of their codebook embeddings [R, S, dim]."""
        return F.embedding(codes + self.offsets, self.embed).sum(dim=1)

    def step(self, codes: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """One decode step through decode_step.cpp: codes [R, K, 1] at cache positions [1]."""
        lm = self.lm
        if self.step_table is None or self.step_table[0] is not lm.layers[0].cross_kv:
            self.step_table = (lm.layers[0].cross_kv, *self.bind())
        _, table, dims, _ = self.step_table
        if self.position_table is None:  # once, not one cos and sin per step
            self.position_table = sinusoidal_positions(torch.arange(self.k.shape[3]), self.cfg.dim)
        x = (self.embed_codes(codes) + self.position_table[positions])[:, 0].contiguous()  # [R, dim]
        logits = torch.empty(x.shape[0], self.cfg.num_codebooks * self.cfg.card)
        eps = lm.layer_norm.eps
        if self.lib.mg_step(DTYPES.index(self.dtype), table.data_ptr(), dims.data_ptr(), eps, x.data_ptr(),
                            int(positions[0]), logits.data_ptr()):
            raise ValueError("the decode step's shapes do not suit the CPU kernels")
        return logits.view(x.shape[0], self.cfg.num_codebooks, self.cfg.card)

    def bind(self) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """decode_step.cpp's pointer table and dimensions for the current cache and conditioning,
        and the tensors it points to (to be kept alive with it)."""
        lm, c = self.lm, self.cfg
        keep: list[torch.Tensor] = []

        def ptr(t: torch.Tensor | None) -> int:
            if t is None:
                return 0
            t = t.detach().float().contiguous()
            keep.append(t)
            return t.data_ptr()

        def weight(w: Weight | None) -> list[int]:
            return [0, 0] if w is None else [w.w.data_ptr(), ptr(w.scale)]

        def norm(m: torch.nn.LayerNorm | None) -> list[int]:
            return [0, 0] if m is None else [ptr(m.weight), ptr(m.bias)]

        table: list[int] = []
        cross_len = 0
        for i, (layer, w) in enumerate(zip(lm.layers, self.layers)):
            cross_k = cross_v = None
            if layer.cross:
                cross_k, cross_v = layer.cross_kv
                cross_len = cross_k.shape[2]
            entry = [*norm(layer.self_attn_layer_norm), *weight(w["qkv"]), *weight(w["out"]),
                     *norm(layer.encoder_attn_layer_norm if layer.cross else None), *weight(w.get("cross_q")),
                     *weight(w.get("cross_out")), ptr(cross_k), ptr(cross_v),
                     *norm(layer.final_layer_norm), *weight(w["fc1"]), *weight(w["fc2"]),
                     self.k[i].data_ptr(), self.v[i].data_ptr(),
                     *(0 if s is None else s[i].data_ptr() for s in (self.k_scale, self.v_scale))]
            assert len(entry) == len(LAYER_SLOTS)
            table += entry
        mask = None if lm.cross_mask is None or cross_len == 0 else lm.cross_mask.reshape(-1, cross_len)
        final = [*norm(lm.layer_norm), *weight(self.heads), ptr(mask)]
        assert len(final) == len(FINAL_SLOTS)
        table += final
        rows = self.k.shape[1]
        dims = torch.tensor([rows, c.dim, c.num_heads, c.ffn_dim, c.num_layers, self.k.shape[3], cross_len,
                             c.num_codebooks * c.card, CACHE_TYPES.index(self.k.dtype)], dtype=torch.int32)
        return torch.tensor(table, dtype=torch.int64), dims, keep


def quantise_blocks(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """w [N, K] -> int8 [N, K] and float32 scales [N, B] for its B blocks of I8_BLOCK values of a row
    (the last part-filled): each block's max |w| / 127, round to nearest. (Per block, not per row: a
    row's largest weight then coarsens only its own block.)"""
    q, scale = quantise_rows(in_blocks(w, -(-w.shape[1] // I8_BLOCK)))  # each block a row
    return q.flatten(1)[:, : w.shape[1]].contiguous(), scale.contiguous()


def in_blocks(w: torch.Tensor, blocks: int) -> torch.Tensor:
    """w [N, K] -> float32 [N, blocks, I8_BLOCK], zero-padded."""
    return F.pad(w.float(), (0, blocks * I8_BLOCK - w.shape[1])).view(w.shape[0], blocks, I8_BLOCK)


def quantise_rows(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """t [..., n] -> int8 [..., n] and a float32 scale [...] per row: max |t| / 127, round to nearest
    (the KV cache's keys and values, a row per head and position; quantise_blocks' blocks)."""
    scale = (t.abs().amax(dim=-1).float() / 127.0).clamp_min(torch.finfo(torch.float32).tiny)
    return torch.round(t.float() / scale[..., None]).clamp(-127, 127).to(torch.int8).contiguous(), scale


def layer_norm(x: torch.Tensor, norm: torch.nn.LayerNorm) -> torch.Tensor:
    return F.layer_norm(x, norm.normalized_shape, norm.weight.to(x.dtype), norm.bias.to(x.dtype), norm.eps)
