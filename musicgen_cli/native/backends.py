"""Which decode path runs: `--backend auto|torch|cpu|cuda` and `--dtype auto|float32|bfloat16|int8`.

- torch: the plain PyTorch reference (musicgen_cli/generation.py's Decoder), float32;
- cpu:   FastLM through the C++ kernels and the fused C++ sampler (kernels/decode_step.cpp, sampler.cpp);
         without the library (bfloat16, int8) FastLM runs in PyTorch, recorded as "cpu-pytorch";
- cuda:  FastLM with the whole decode step, fused sampler included, captured as one CUDA graph.
`auto` takes cpu on a CPU (when the kernels cannot be built it says so in one warning line and
uses torch) and cuda on a GPU (its tests passed on an H200 on 2026-12-04: docs/speed.md).
"""

from __future__ import annotations

import contextlib

import torch

from ..errors import ModelProducedNaN
from ..generation import Decoder
from ..lm import MusicGenLM
from ..sampling import SamplingOptions

from . import cpu
from .fast_lm import DTYPES, FastLM

BACKENDS = ("auto", "torch", "cpu", "cuda")
# The dtype `auto` picks: on the CPU the fastest one whose measured quality cost is negligible
# (docs/speed.md); on a GPU float32, exact against the reference (bfloat16: 1.9x faster, opt-in).
DEFAULT_DTYPE = {"cpu": "int8", "cuda": "float32"}


# Multiply-adds per decode step below which decoding runs on one CPU thread. Waking threads costs
# microseconds on an idle machine, but on a busy one OpenMP's waiting threads compete with the one
# doing the work: the bundled model (9M a step) decoded 3-10x slower on two threads than on one
# while another process ran; musicgen-small (690M) needs both.
ONE_THREAD_BELOW = 1 << 26


def step_work(lm: MusicGenLM, rows: int = 2) -> int:
    """Multiply-adds of one decode step (guided: two rows), weights only."""
    c = lm.cfg
    per_layer = 4 * c.dim * c.dim + 2 * c.dim * c.ffn_dim + (0 if c.melody else 2 * c.dim * c.dim)
    return rows * (c.num_layers * per_layer + c.num_codebooks * c.card * c.dim)


class BackendError(ValueError):
    pass


class FastDecoder(Decoder):
    """FastLM for the network; with the C++ library, its fused sampler (a counter-based generator)."""

    def __init__(self, fast: FastLM, opts: SamplingOptions, lib):
        super().__init__(fast.lm, opts)
        self.fast, self.lib, self.step, self.seeds = fast, lib, 0, None

    def setup(self, rows: int, columns: int) -> None:
        self.fast.setup_cache(rows, columns)

    def logits(self, codes: torch.Tensor, start: int) -> torch.Tensor:
        return self.fast(codes, start)

    def sample(self, logits: torch.Tensor, seq: torch.Tensor, known: torch.Tensor, col: int) -> None:
        if self.lib is None:
            return super().sample(logits, seq, known, col)
        o = self.opts
        logits = logits.float().contiguous()
        assert seq.is_contiguous() and known.is_contiguous() and seq.dtype == torch.long
        b, k, t = seq.shape
        top_k = min(o.top_k, logits.shape[-1])  # past the codebook it means "off"; never truncated by ctypes
        if self.seeds is None:  # each row's own seed (uint64 in C; every seed is below 2**63)
            self.seeds = torch.tensor(o.row_seeds(b), dtype=torch.int64)
        self.step += 1
        if self.lib.mg_sample(logits.data_ptr(), b, k, logits.shape[-1], int(o.guided), o.cfg, o.temperature, top_k,
                              o.top_p, int(o.greedy), self.seeds.data_ptr(), self.step - 1, seq.data_ptr(),
                              known.data_ptr(), t, col):
            raise ModelProducedNaN(self.step)


def resolve(backend: str, dtype: str, device: str) -> tuple[str, str]:
    """The decode path and dtype that `backend` and `dtype` (`auto` included) stand for on `device`
    ("cpu" or "cuda"); a BackendError names a choice that cannot be had. Cheap: callers check
    before loading a model."""
    if backend not in BACKENDS:
        raise BackendError(f"backend must be one of {', '.join(BACKENDS)}")
    if dtype != "auto" and dtype not in DTYPES:
        raise BackendError(f"dtype must be auto or one of {', '.join(DTYPES)}")
    if backend == "auto":
        backend = device  # the fast path of the device: cpu or cuda
    elif backend in ("cpu", "cuda") and backend != device:
        raise BackendError(f"--backend {backend} needs the model on the {backend}, it is on the {device}")
    if dtype == "auto":
        dtype = "float32" if backend == "torch" else DEFAULT_DTYPE[device]
    if backend == "torch" and dtype != "float32":
        raise BackendError("the torch backend (the reference) runs float32 only; bfloat16 and int8 are the fast paths'")
    if device == "cuda" and dtype == "int8":
        raise BackendError("int8 weights are a CPU path; on a GPU use float32 or bfloat16")
    return backend, dtype


class Backend:
    """Built once per loaded model (packing the weights takes a moment); `decoder(opts)` per generation."""

    def __init__(self, lm: MusicGenLM, backend: str = "auto", dtype: str = "auto"):
        device = lm.layer_norm.weight.device.type
        backend, dtype = resolve(backend, dtype, device)
        self.lm, self.dtype, self.fast, self.lib, self.graphs = lm, dtype, None, None, None
        if backend == "cpu":
            self.lib = cpu.library()  # None (after a warning) when the kernels cannot be built
            if self.lib is None and dtype == "float32":
                backend = "torch"
            else:
                self.fast = FastLM(lm, dtype, release=True)
                if self.lib is None:  # what really runs (and what the sidecar records): our LM in PyTorch
                    backend = "cpu-pytorch"
        elif backend == "cuda":
            from . import cuda

            self.fast = FastLM(lm, dtype, release=True)
            self.graphs = cuda.graph_support()  # None (after a warning): FastLM step by step, PyTorch sampling
        self.name = backend
        self.one_thread = device == "cpu" and step_work(lm) < ONE_THREAD_BELOW

    @contextlib.contextmanager
    def threads(self):
        """Around a generation (and the codec's decoding): a small model's CPU work on one thread
        (ONE_THREAD_BELOW; the bundled model's codec, too, decoded 30 s in 1.4 s on one thread and
        2.3 s on two on a busy machine)."""
        before = torch.get_num_threads()
        if self.one_thread:
            torch.set_num_threads(1)
        try:
            yield
        finally:
            if self.one_thread:
                torch.set_num_threads(before)

    def decoder(self, opts: SamplingOptions) -> Decoder:
        if self.fast is None:
            return Decoder(self.lm, opts)
        if self.graphs is not None:
            return self.graphs.decoder(self.fast, opts)
        return FastDecoder(self.fast, opts, self.lib)
