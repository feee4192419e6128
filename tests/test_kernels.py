"""The fast decode path (kernels/) against the PyTorch reference: products, the network, the sampler."""

import copy
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from musicgen_cli.native import cpu
from musicgen_cli.native.backends import Backend, FastDecoder, resolve
from musicgen_cli.native.fast_lm import FastLM, Weight
from musicgen_cli import MusicGen
from musicgen_cli.errors import MusicgenError
from musicgen_cli.lm import LMConfig, MusicGenLM
from musicgen_cli.sampling import SamplingOptions, guide, top_k_filter, top_p_filter

LIB = cpu.library()
needs_lib = pytest.mark.skipif(LIB is None, reason="the CPU kernels cannot be built here (see the warning)")
needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine: the CUDA path is not run")
# the library's builds this CPU runs: AVX2, and AVX-512 (VNNI, BF16) where it has them; each is tested
ISAS = cpu.isas() if LIB is not None else [None]


def int8_inputs(x: torch.Tensor) -> torch.Tensor:
    """What gemv.h makes of an int8 product's inputs: 14-bit integers, scale max |x| / 8191 per row
    (the same float32 operations, so the same rounding)."""
    top = x.abs().amax(dim=-1, keepdim=True)
    scale = torch.where(top > 0, top / 8191.0, torch.ones_like(top))
    return torch.round(x * (1.0 / scale)).double() * scale.double()


@needs_lib
@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("rows", [1, 2, 3, 4, 5, 9])
@pytest.mark.parametrize("dtype,odd_width", [("float32", 136), ("bfloat16", 144), ("int8", 160)])
def test_products_match_torch(isa, rows, dtype, odd_width):
    """Every build's products against the same product in float64, on the same rounded weights
    (and for int8 the same rounded inputs); widths that end in a part chunk (AVX-512 reads 32 or
    64 values at a time) and a part block of output rows."""
    lib = cpu.library(isa)
    for width in (256, odd_width):
        torch.manual_seed(rows)
        w = torch.randn(203, width)
        w[:, 64:96] *= 16  # one block of each row far larger than the others
        x = torch.randn(rows, width) * torch.rand(1, width) * 4
        if rows > 2:
            x[1] = 0.0  # a row of zeros
        weight = Weight(w, dtype, lib)
        assert weight.lib is lib
        got = cpu.linear(lib, x, weight.w, weight.scale)  # 9 rows too (a step's Weight sends those to PyTorch)
        inputs = int8_inputs(x) if dtype == "int8" else x.double()
        ref = F.linear(inputs, weight.dense(torch.float64))  # the same (rounded) weights, exactly
        assert (got - ref).abs().max() <= 1e-5 * ref.abs().max()
        if dtype != "float32":  # and the rounding of the weights and inputs is what the dtype promises
            step = {"bfloat16": 2**-8, "int8": 1 / 127}[dtype]
            assert (weight.dense(torch.float32) - w).abs().max() <= step * w.abs().max()
            if dtype == "int8":  # each block of 32 weights rounded on its own scale; the inputs per row
                blocks = lambda t: t.view(203, -1, 32)
                error, top = blocks(weight.dense(torch.float32) - w).abs(), blocks(w).abs().amax(-1, keepdim=True)
                assert (error <= top / 254 * 1.0001).all()
                assert ((int8_inputs(x) - x).abs() <= x.abs().amax(-1, keepdim=True) / 16382 + 1e-7).all()


def tiny_lm(melody=False, seed=0) -> MusicGenLM:
    torch.manual_seed(seed)
    cfg = LMConfig(dim=64, num_layers=2, num_heads=4, ffn_dim=128, num_codebooks=4, card=48, text_dim=32,
                   num_chroma=12 if melody else 0, chroma_length=6 if melody else 0)
    lm = MusicGenLM(cfg).eval().requires_grad_(False)
    for p in lm.parameters():  # larger weights than the default init: logits that vary
        p.normal_(0, 0.3)
    states, mask = torch.randn(4, 5, 32), torch.tensor([[1] * 5, [1, 1, 1, 0, 0], [0] * 5, [0] * 5])
    lm.set_conditioning(states, mask, torch.rand(4, 6, 12) if melody else None)
    return lm


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("melody", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "int8"])
def test_fast_network_matches_reference(melody, dtype, isa):
    """Prefill then single steps, the CPU's fused step (decode_step.cpp) and the cache read in full with a mask
    (the fixed-shape form the CUDA graph captures): the reference's logits, within the dtype's error."""
    lm = tiny_lm(melody)
    codes = torch.randint(0, lm.cfg.card + 1, (4, 4, 12))
    lm.setup_caches(4, 12)
    ref = [lm(codes[:, :, :3], 0, last_only=True)[:, :, -1]]
    ref += [lm(codes[:, :, c : c + 1], c, last_only=True)[:, :, -1] for c in range(3, 12)]
    fast = FastLM(lm, dtype, isa=isa)
    assert fast.fused == (LIB is not None)  # dynamic single steps: one decode_step.cpp call each
    for static in (False, True):
        fast.setup_cache(4, 12)
        got = [fast(codes[:, :, :3], 0)]
        for c in range(3, 12):
            if static:
                got.append(fast.forward(codes[:, :, c : c + 1], fast.positions(c, 1), upto=None))
            else:
                got.append(fast(codes[:, :, c : c + 1], c))
        error = (torch.stack(got) - torch.stack(ref)).abs().max() / torch.stack(ref).abs().max()
        assert error < {"float32": 1e-5, "bfloat16": 2e-2, "int8": 2e-2}[dtype]


@needs_lib
@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", ["bfloat16", "int8"])
def test_int8_cache_written_by_the_step_as_by_pytorch(isa, dtype):
    """The lossy dtypes' KV cache (int8, a scale per head and position): what decode_step.cpp writes
    at each step equals what the PyTorch path writes from its own keys and values (quantise_rows),
    up to a rounding step where the two paths' products differ in the last bits."""
    lm = tiny_lm()
    codes = torch.randint(0, lm.cfg.card + 1, (4, 4, 12))
    fast = FastLM(lm, dtype, isa=isa)
    assert fast.fused and fast.cache_dtype == torch.int8
    caches = []
    for fused in (True, False):
        fast.setup_cache(4, 12)
        fast(codes[:, :, :3], 0)
        for c in range(3, 12):
            fast(codes[:, :, c : c + 1], c) if fused else fast.forward(codes[:, :, c : c + 1], fast.positions(c, 1), upto=c + 1)
        caches.append([(q.float() * s[..., None], s) for q, s in ((fast.k, fast.k_scale), (fast.v, fast.v_scale))])
    for (step, step_scale), (ref, ref_scale) in zip(*caches):
        assert torch.allclose(step_scale, ref_scale, rtol=1e-3) and ref_scale[:, :, :, 3:].min() > 0
        rounding_steps = (step - ref).abs() / ref_scale[..., None]
        assert rounding_steps.max() <= 1.01 and rounding_steps.mean() < 0.02


def draws(logits, opts, n, seq_len=1):
    """n draws of the fused sampler for one (row, codebook), steps 0 .. n-1."""
    b, k = 1, 1
    decoder = FastDecoder.__new__(FastDecoder)
    decoder.opts, decoder.lib, decoder.step, decoder.seeds = opts, LIB, 0, None
    out = []
    seq = torch.zeros(b, k, seq_len, dtype=torch.long)
    known = torch.zeros(b, k, seq_len, dtype=torch.bool)
    for _ in range(n):
        decoder.sample(logits, seq, known, 0)
        out.append(int(seq[0, 0, 0]))
    return torch.tensor(out)


@needs_lib
@pytest.mark.parametrize("top_k,top_p,temperature", [(0, 0.0, 1.0), (20, 0.0, 1.0), (40, 0.8, 0.7), (0, 0.5, 1.3)])
def test_sampler_distribution_matches_reference(top_k, top_p, temperature):
    """A chi-square test of 20000 draws against the reference's filtered, guided distribution;
    and no draw ever outside the reference's support."""
    torch.manual_seed(top_k)
    logits = torch.randn(2, 1, 64) * 0.5  # conditional and unconditional rows
    opts = SamplingOptions(top_k=top_k, top_p=top_p, temperature=temperature, cfg=2.5, seed=7)
    probs = top_p_filter(top_k_filter(guide(logits[0], logits[1], opts.cfg) / temperature, top_k), top_p).softmax(-1)[0]
    n = 20000
    counts = torch.bincount(draws(logits, opts, n), minlength=64).double()
    assert counts[probs == 0].sum() == 0
    support = probs > 0
    expected = probs[support].double() * n
    chi2 = float(((counts[support] - expected) ** 2 / expected).sum())
    df = int(support.sum()) - 1
    assert df >= 3, "too few tokens kept for the test to mean something"
    assert chi2 < df + 6 * math.sqrt(2 * df), f"chi2 {chi2:.1f} with {df} degrees of freedom"


@needs_lib
def test_sampler_seed_repeats_greedy_is_argmax_known_cells_kept():
    logits = torch.randn(2, 1, 64)
    opts = SamplingOptions(top_k=50, seed=3)
    assert torch.equal(draws(logits, opts, 50), draws(logits, opts, 50))
    assert not torch.equal(draws(logits, opts, 50), draws(logits, SamplingOptions(top_k=50, seed=4), 50))
    greedy = draws(logits, SamplingOptions(top_k=1, cfg=3.0), 3)
    assert (greedy == guide(logits[0], logits[1], 3.0).argmax()).all()
    decoder = FastDecoder.__new__(FastDecoder)
    decoder.opts, decoder.lib, decoder.step, decoder.seeds = opts, LIB, 0, None
    seq, known = torch.full((1, 1, 2), 5), torch.tensor([[[True, False]]])
    decoder.sample(logits, seq, known, 0)
    assert seq[0, 0, 0] == 5


@needs_lib
def test_fast_decoder_greedy_tokens_equal_reference_and_sampling_repeats(melody_ckpt):

    ref = MusicGen.load(str(melody_ckpt), device="cpu", backend="torch")
    fast = MusicGen.load(str(melody_ckpt), device="cpu", backend="cpu", dtype="float32")
    assert fast.backend.name == "cpu" and fast.backend.lib is not None
    greedy = SamplingOptions(top_k=1)
    assert torch.equal(fast.generate_codes(["a", "bb"], 2.0, greedy, stride=0.5),
                       ref.generate_codes(["a", "bb"], 2.0, greedy, stride=0.5))  # several windows
    sampled = fast.generate_codes(["a"], 1.0, SamplingOptions(seed=5))
    assert torch.equal(sampled, fast.generate_codes(["a"], 1.0, SamplingOptions(seed=5)))


def test_backend_choices_are_checked():
    lm = tiny_lm()
    with pytest.raises(ValueError, match="float32 only"):
        Backend(lm, "torch", "int8")
    with pytest.raises(ValueError, match="needs the model on the cuda"):
        Backend(lm, "cuda", "auto")
    with pytest.raises(ValueError, match="backend must be"):
        Backend(lm, "fast", "auto")
    assert resolve("auto", "auto", "cpu") == ("cpu", "int8")
    assert resolve("auto", "auto", "cuda") == ("cuda", "float32")  # its tests passed on an H200
    assert resolve("cuda", "auto", "cuda") == ("cuda", "float32")
    # checked before the checkpoint is read: the bad choice is named, not the missing folder
    with pytest.raises(MusicgenError, match="float32 only"):
        MusicGen.load("/no/such/checkpoint", device="cpu", backend="torch", dtype="int8")


def test_without_kernels_one_warning_then_pytorch(tmp_path):
    """No compiler (simulated): one warning line, and the command still writes its file."""
    env = {**os.environ, "MUSICGEN_NO_CPU_KERNELS": "1", "HF_HUB_OFFLINE": "1"}
    out = tmp_path / "x.wav"
    done = subprocess.run([sys.executable, "-m", "musicgen_cli", "generate", "x", "-d", "0.5", "-o", str(out)],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert out.exists()
    assert done.stderr.count("CPU fast path unavailable, using PyTorch: MUSICGEN_NO_CPU_KERNELS is set") == 1


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="no nvcc here to check that the CUDA sampler compiles")
def test_cuda_sampler_source_compiles(tmp_path):
    """What NVRTC gets at run time (philox.h, then sampler.cu), compiled to PTX by nvcc."""
    here = Path(__file__).parents[1] / "kernels"
    source = tmp_path / "sampler.cu"
    text = (here / "philox.h").read_text().replace("#pragma once", "") + (here / "sampler.cu").read_text()
    source.write_text("#define __CUDACC_RTC__ 1\n" + text)
    done = subprocess.run(["nvcc", "-arch=sm_90", "-ptx", "--fmad=false", str(source), "-o", str(tmp_path / "s.ptx")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "mg_sample_cuda" in (tmp_path / "s.ptx").read_text()


@needs_gpu
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_cuda_graph_decoder_matches_reference(melody_ckpt, dtype):
    """float32: the graph-captured decoder's greedy tokens are the reference's, token for token.
    bfloat16: it runs and repeats with a seed (its free-running greedy tokens drift from float32's
    within a few frames on a tiny random model, as the CPU bfloat16 path's do: 18% and 36% agreement
    measured on an H200; its accuracy is test_cuda_fast_network_matches_reference's)."""
    ref = MusicGen.load(str(melody_ckpt), device="cpu", backend="torch")
    gpu = MusicGen.load(str(melody_ckpt), device="cuda", backend="cuda", dtype=dtype)
    assert gpu.backend.graphs is not None, "the CUDA sampler did not build"
    if dtype == "float32":
        greedy = SamplingOptions(top_k=1)
        got = gpu.generate_codes(["a", "bb"], 2.0, greedy, stride=0.5).cpu()
        assert torch.equal(got, ref.generate_codes(["a", "bb"], 2.0, greedy, stride=0.5))
    seeded = SamplingOptions(seed=5)
    assert torch.equal(gpu.generate_codes(["a"], 1.0, seeded), gpu.generate_codes(["a"], 1.0, seeded))


@needs_gpu
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_cuda_fast_network_matches_reference(dtype):
    """The network on the GPU (prefill, then steps in the fixed-shape form the graph captures): the
    CPU reference's logits within the dtype's error, as test_fast_network_matches_reference on the CPU."""
    lm = tiny_lm(melody=True)
    conditioning = torch.randn(4, 5, 32), torch.tensor([[1] * 5, [1, 1, 1, 0, 0], [0] * 5, [0] * 5]), torch.rand(4, 6, 12)
    on_gpu = copy.deepcopy(lm).cuda()
    lm.set_conditioning(*conditioning)
    on_gpu.set_conditioning(*(t.cuda() for t in conditioning))
    codes = torch.randint(0, lm.cfg.card + 1, (4, 4, 12))
    lm.setup_caches(4, 12)
    ref = [lm(codes[:, :, :3], 0, last_only=True)[:, :, -1]]
    ref += [lm(codes[:, :, c : c + 1], c, last_only=True)[:, :, -1] for c in range(3, 12)]
    fast = FastLM(on_gpu, dtype)
    fast.setup_cache(4, 12)
    got = [fast(codes[:, :, :3].cuda(), 0)]
    got += [fast.forward(codes[:, :, c : c + 1].cuda(), fast.positions(c, 1), upto=None) for c in range(3, 12)]
    error = (torch.stack(got).float().cpu() - torch.stack(ref)).abs().max() / torch.stack(ref).abs().max()
    assert error < {"float32": 1e-5, "bfloat16": 2e-2}[dtype], error


@needs_gpu
@needs_lib
def test_cuda_sampler_draws_what_the_cpu_sampler_draws():
    from musicgen_cli.native import cuda

    kernel = cuda.compile_sampler()
    torch.manual_seed(0)
    logits = torch.randn(4, 4, 2048) * 3
    opts = SamplingOptions(top_k=250, top_p=0.9, temperature=0.9, cfg=3.0, seed=11)
    seq, known = torch.zeros(2, 4, 3, dtype=torch.long), torch.zeros(2, 4, 3, dtype=torch.bool)
    cpu_decoder = FastDecoder.__new__(FastDecoder)
    cpu_decoder.opts, cpu_decoder.lib, cpu_decoder.step, cpu_decoder.seeds = opts, LIB, 0, None
    gpu_decoder = cuda.GraphDecoder.__new__(cuda.GraphDecoder)
    gpu_decoder.opts, gpu_decoder.kernel, gpu_decoder.seeds = opts, kernel, None
    gpu_decoder.steps = torch.zeros(1, dtype=torch.long, device="cuda")
    gpu_decoder.col = torch.zeros(1, dtype=torch.long, device="cuda")
    gseq, gknown = seq.cuda(), known.cuda()
    for col in range(3):
        cpu_decoder.sample(logits, seq, known, col)
        gpu_decoder.sample(logits.cuda(), gseq, gknown, col)
    assert (gseq.cpu() == seq).float().mean() > 0.99  # CUDA's exp and glibc's may differ in the last bit
