"""The GPU path: the fused sampler (sampler.cu) compiled at run time with NVRTC, which CUDA builds of
torch ship (no CUDA toolkit needed), and the whole decode step captured as one CUDA graph.

One graph replay per column: the sampler draws column `col` into the pattern from the last logits
(each batch row with its own seed, from the device tensor `seeds`), the network runs on that column
(FastLM with its static cache, positions from the device tensor `col`), the logits land in a fixed
buffer and `col` and the generator's step advance, all on the device, so the same graph serves
every step of a window. The compiled PTX is cached on disk; any failure to build it leaves
`graph_support()` None after one warning line (FastLM then runs step by step with PyTorch sampling).
"""

from __future__ import annotations

import hashlib
import os
import warnings

import torch

from ..errors import ModelProducedNaN
from ..generation import Decoder
from ..sampling import SamplingOptions

from . import build
from .backends import FastDecoder
from .cpu import cache_dir
from .fast_lm import FastLM

THREADS = 256  # sampler.cu: one block of THREADS per (batch row, codebook)
MAX_VOCAB = 4096


def shared_bytes(vocab: int) -> int:
    """sampler.cu's dynamic shared memory: an 8-byte sort key per entry, padded to a power of two,
    and a 2-byte token per entry."""
    return 8 * (1 << (vocab - 1).bit_length()) + 2 * vocab


def compile_sampler():
    """The sampler kernel for the current device, from the PTX cache or NVRTC."""
    from torch.cuda._utils import _cuda_load_module, _nvrtc_compile

    major, minor = torch.cuda.get_device_capability()
    here = build.source_dir()
    source = (here / "philox.h").read_text() + "\n" + (here / "sampler.cu").read_text()
    options = ["--fmad=false"]  # the same float rounding as the CPU sampler (-ffp-contract=off)
    key = hashlib.sha256(f"{source}{major}{minor}{torch.version.cuda}{options}".encode()).hexdigest()[:16]
    path = cache_dir() / f"sampler-{key}.ptx"
    if path.exists():
        ptx = path.read_bytes()
    else:
        ptx, _ = _nvrtc_compile(source, "mg_sample_cuda", f"{major}{minor}", nvcc_options=options)
        build.write_atomic(path, ptx if isinstance(ptx, bytes) else ptx.encode())
    return _cuda_load_module(ptx, ["mg_sample_cuda"])["mg_sample_cuda"]


class GraphDecoder(FastDecoder):
    """FastDecoder's network and prefill; the sampler on the GPU, the step loop as one graph."""

    def __init__(self, fast: FastLM, opts: SamplingOptions, kernel):
        super().__init__(fast, opts, lib=None)
        self.kernel = kernel
        device = fast.embed.device
        self.steps = torch.zeros(1, dtype=torch.long, device=device)  # the generator's step
        self.col = torch.zeros(1, dtype=torch.long, device=device)

    def row_seeds(self, batch: int, device) -> torch.Tensor:
        """Each row's seed on the device, made once (before the graph that reads it is captured)."""
        if self.seeds is None:
            self.seeds = torch.tensor(self.opts.row_seeds(batch), dtype=torch.long, device=device)
        return self.seeds

    def launch(self, logits: torch.Tensor, seq: torch.Tensor, known: torch.Tensor) -> None:
        """Draw column `self.col` of seq from logits (one launch; no host synchronisation)."""
        o = self.opts
        b, k, t = seq.shape
        vocab = logits.shape[-1]
        self.kernel(grid=(b * k, 1, 1), block=(THREADS, 1, 1), shared_mem=shared_bytes(vocab),
                    args=[logits, b, k, vocab, int(o.guided), float(o.cfg), float(o.temperature), min(o.top_k, vocab),
                          float(o.top_p), int(o.greedy), self.row_seeds(b, seq.device), self.steps, seq, known, t,
                          self.col])

    def sample(self, logits: torch.Tensor, seq: torch.Tensor, known: torch.Tensor, col: int) -> None:
        self.col.fill_(col)
        self.launch(logits.float().contiguous(), seq, known)
        self.steps += 1

    def fill(self, seq: torch.Tensor, known: torch.Tensor, first: int, on_step) -> None:
        prefix = self.lm.prefix_len
        buffer = self.logits(self.rows(seq[:, :, :first]), 0).float().contiguous()  # prefill, eagerly
        if not bool(torch.isfinite(buffer).all()):  # one check before the graph (damaged weights show here)
            raise ModelProducedNaN(1)

        def step() -> None:  # sample column col, run the network on it, col += 1
            self.launch(buffer, seq, known)
            positions = self.col + prefix
            buffer.copy_(self.fast.forward(self.rows(seq.index_select(2, self.col)), positions))
            self.col += 1
            self.steps += 1

        self.col.fill_(first)
        step()  # the first step eagerly: it also warms up what the capture will record
        on_step()
        if seq.shape[2] - first > 1:
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                step()
            for _ in range(first + 1, seq.shape[2]):
                graph.replay()
                on_step()
        if not bool(torch.isfinite(buffer).all()):  # and one after it (no check per step: no sync)
            raise ModelProducedNaN(seq.shape[2] - first)


class Graphs:
    def __init__(self, kernel):
        self.kernel = kernel

    def decoder(self, fast: FastLM, opts: SamplingOptions) -> Decoder:
        if fast.cfg.card > MAX_VOCAB:
            raise ValueError(f"the CUDA sampler takes codebooks of at most {MAX_VOCAB} entries")
        return GraphDecoder(fast, opts, self.kernel)


def graph_support() -> Graphs | None:
    try:
        if os.environ.get("MUSICGEN_NO_CUDA_KERNELS"):
            raise RuntimeError("MUSICGEN_NO_CUDA_KERNELS is set")
        return Graphs(compile_sampler())
    except Exception as e:  # NVRTC missing, a driver too old for the PTX, ...: the PyTorch path still works
        warnings.warn(f"CUDA fast path unavailable, decoding step by step with PyTorch sampling: {e}", stacklevel=2)
        return None
