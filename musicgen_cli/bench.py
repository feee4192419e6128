"""Decode speed: ours next to transformers' `generate`, on the same random weights, in one run.

    musicgen bench --size small --dtype float32,bfloat16,int8 --steps 100 --repeats 3

Both sides get the same published decoder architecture with random weights (seeded, so each
process builds the same ones), the same text tokens, guidance 3, top-k 250 sampling, batch 1 and
the same number of decode steps. The text encoder and codec are kept tiny (they run once per
piece, not per step). Each side runs in its own process, so that its peak memory is its own.
Prints medians, ratios to transformers, and the per-step floor: the bytes of decoder weights a
step must read over the memory read bandwidth, which each side's process measures right after its
own runs (this machine's bandwidth drifts by a quarter over minutes). For our side also the time
to first audio of a stream (`-o -`, `--play`): from the prompt to the first decoded samples, with
MusicGen's full-size EnCodec (random weights) decoding in chunks.
"""

from __future__ import annotations

import multiprocessing
import statistics
import time
from dataclasses import dataclass

import torch

SIZES = {  # decoder dim, layers, heads, ffn (reference.md's table)
    "small": (1024, 24, 16, 4096),
    "medium": (1536, 48, 24, 6144),
    "large": (2048, 48, 32, 8192),
    "tiny": (64, 2, 4, 128),  # not published: a quick check that the benchmark runs (its times mean little)
}
TEXT = [[37, 1043, 3, 9, 5, 1]]  # any six text tokens


def random_transformers_model(size: str, device: str = "cpu"):
    from transformers import EncodecConfig, MusicgenConfig, MusicgenDecoderConfig, MusicgenForConditionalGeneration, T5Config

    dim, layers, heads, ffn = SIZES[size]
    config = MusicgenConfig(
        text_encoder=T5Config(vocab_size=32128, d_model=768, d_kv=64, d_ff=256, num_layers=1, num_heads=12),
        audio_encoder=EncodecConfig(sampling_rate=32000, upsampling_ratios=[8, 5, 4, 4], num_filters=4,
                                    hidden_size=16, codebook_dim=16, codebook_size=2048, target_bandwidths=[2.2]),
        decoder=MusicgenDecoderConfig(hidden_size=dim, num_hidden_layers=layers, num_attention_heads=heads,
                                      ffn_dim=ffn, num_codebooks=4, vocab_size=2048, dropout=0.0),
    )
    torch.manual_seed(0)
    with torch.device(device):  # built where it runs (a GPU draws the billions of random weights in moments)
        return MusicgenForConditionalGeneration(config).eval()


def step_weight_bytes(lm, dtype: str) -> int:
    """Bytes of decoder weights one decode step reads (cross-attention keys and values are computed
    once per piece, so their projections are not counted)."""
    from .native.fast_lm import I8_BLOCK

    size = {"float32": 4, "bfloat16": 2, "int8": 1}[dtype]
    total = 0
    for name, p in lm.named_parameters():
        if p.dim() == 2 and name.startswith(("layers.", "lm_heads.")) and ".encoder_attn.k_proj" not in name \
                and ".encoder_attn.v_proj" not in name:
            total += p.numel() * size + (p.shape[0] * -(-p.shape[1] // I8_BLOCK) * 4 if dtype == "int8" else 0)
    return total


def read_bandwidth(device: torch.device, repeats: int = 5) -> float:
    """Memory read bandwidth in bytes/s: the median time to sum a buffer far larger than the caches."""
    big = torch.ones((2 << 30 if device.type == "cuda" else 512 << 20) // 4, device=device)
    times = []
    for _ in range(repeats + 1):
        sync(device)
        start = time.perf_counter()
        big.sum()
        sync(device)
        times.append(time.perf_counter() - start)
    return big.numel() * 4 / statistics.median(times[1:])


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    else:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)  # give back what setting up freed (the source model)
        with open("/proc/self/clear_refs", "w") as f:  # Linux: restart the peak resident size (VmHWM)
            f.write("5")


def peak_memory(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated()
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


@dataclass
class Result:
    name: str
    steps: int
    times: list[float]
    peak: int
    weight_bytes: int
    bandwidth: float  # bytes/s, measured in the same process right after the runs
    first_audio: float | None = None  # seconds from the prompt to the first streamed audio (ours)


def measure(side: str, backend: str, dtype: str, size: str, device: str, steps: int, repeats: int, threads: int) -> Result:
    """One side's runs, in this (fresh) process."""
    import gc

    from .native.backends import Backend
    from musicgen_cli.checkpoints import hf_lm_config, hf_to_lm_state
    from musicgen_cli.conditioning import with_unconditional
    from musicgen_cli.generation import generate_codes
    from musicgen_cli.lm import MusicGenLM
    from musicgen_cli.sampling import SamplingOptions

    torch.set_num_threads(threads)
    dev = torch.device(device)
    hf = random_transformers_model(size, device).to(dev)
    ids = torch.tensor(TEXT, device=dev)
    mask = torch.ones_like(ids)
    lm = MusicGenLM(hf_lm_config(hf.config.decoder.to_dict(), text_dim=768))
    lm.load_state_dict(hf_to_lm_state(hf.state_dict()))
    lm.to(dev).eval().requires_grad_(False)
    weight_bytes = step_weight_bytes(lm, "float32" if side == "transformers" else dtype)

    if side == "transformers":
        del lm

        def run(steps=steps, on_frames=None):
            hf.generate(input_ids=ids, attention_mask=mask, do_sample=True, top_k=250, guidance_scale=3.0, max_new_tokens=steps)
        name = "transformers generate, float32"
    else:
        text_encoder = hf.text_encoder
        del hf
        chosen = Backend(lm, backend, dtype)
        opts = SamplingOptions(top_k=250, cfg=3.0, seed=0)

        def run(steps=steps, on_frames=None):
            states = text_encoder(input_ids=ids, attention_mask=mask).last_hidden_state
            lm.set_conditioning(*with_unconditional(states, mask))
            empty = torch.zeros(1, 4, 0, dtype=torch.long, device=dev)
            generate_codes(chosen.decoder(opts), steps - 3, empty, window=1500, stride=900,  # 3: the pattern's overhang
                           on_frames=on_frames)
        name = f"musicgen --backend {chosen.name} --dtype {chosen.dtype}"
        if chosen.lib is not None:  # which build of the CPU kernels: avx2 or avx512
            name += f" ({chosen.lib.isa})"
    gc.collect()
    with torch.inference_mode():
        # warm-up: allocator, thread pool, kernels built, graphs captured once (on the CPU 50 steps
        # do that: a whole 30 s window of transformers takes minutes)
        run(steps if dev.type == "cuda" else min(steps, 50))
        reset_peak(dev)
        times = []
        for _ in range(repeats):
            sync(dev)
            start = time.perf_counter()
            run()
            sync(dev)
            times.append(time.perf_counter() - start)
    peak = peak_memory(dev)  # before the bandwidth test's buffer
    first = None if side == "transformers" else statistics.median(
        first_audio(lambda on_frames: run(on_frames=on_frames), chosen, dev) for _ in range(repeats))
    return Result(name, steps, times, peak, weight_bytes, read_bandwidth(dev), first)


def first_audio(run, backend, dev: torch.device) -> float:
    """Seconds from the prompt to the first samples a stream gives (`-o -`, --play): text encoding,
    prefill, the steps until the first frame and the codec's look-ahead are drawn, and the chunked
    decode (streaming.Listener) with MusicGen's EnCodec (random weights, full size)."""
    from types import SimpleNamespace

    from .codec import Codec
    from .encodec import EnCodec, EnCodecConfig
    from .streaming import Listener

    class Heard(Exception):
        pass

    class Sink:
        def write(self, wav):
            raise Heard

        def close(self, interrupted=False):
            pass

    torch.manual_seed(0)
    codec = Codec(EnCodec(EnCodecConfig()).eval().to(dev))
    start = time.perf_counter()
    listener = Listener(SimpleNamespace(codec=codec, sample_rate=codec.sample_rate, backend=backend), Sink(), None)
    try:
        with torch.inference_mode():
            run(listener)
    except Heard:
        return time.perf_counter() - start
    raise RuntimeError("the stream gave no audio")


def in_process(*args) -> Result:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(measure, args)


def run(size: str = "small", dtypes: list[str] = ("float32",), backend: str = "auto", device: str = "auto",
        steps: int = 100, repeats: int = 3, threads: int | None = None, reference_steps: int | None = None) -> list[Result]:
    """reference_steps: transformers' decode steps per run (default: steps); fewer when its whole
    window would take many minutes. Speed-ups compare times per step."""
    device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    threads = threads or torch.get_num_threads()
    reference_steps = reference_steps or steps
    print(f"musicgen-{size} architecture, random weights, {device}"
          f"{f' ({threads} threads)' if device == 'cpu' else ''}, guidance 3, top-k 250, batch 1, "
          f"{steps} steps x {repeats} runs (medians)", flush=True)
    if reference_steps != steps:
        print(f"transformers runs {reference_steps} steps, not {steps}: steps late in a window cost more on both sides, "
              f"so its time per step is {'low' if reference_steps < steps else 'high'} and the speed-ups "
              f"{'understated' if reference_steps < steps else 'overstated'}", flush=True)
    results = [in_process("transformers", "torch", "float32", size, device, reference_steps, repeats, threads)]
    for dtype in dtypes:
        results.append(in_process("ours", backend, dtype, size, device, steps, repeats, threads))
    base = statistics.median(results[0].times) / results[0].steps
    print(f"  {'':50s} {'ms/step':>8s} {'x real time':>11s} {'peak mem':>9s} {'weights/step':>12s} "
          f"{'read GB/s':>9s} {'floor ms':>8s} {'x floor':>7s} {'speed-up':>8s} {'1st audio':>9s}")
    for r in results:
        t = statistics.median(r.times) / r.steps  # per step
        floor = r.weight_bytes / r.bandwidth
        print(f"  {r.name:50s} {1000 * t:8.1f} {1 / 50 / t:11.3f} {r.peak / 2**30:7.2f} GB "
              f"{r.weight_bytes / 1e9:9.2f} GB {r.bandwidth / 1e9:9.1f} {1000 * floor:8.1f} {t / floor:7.2f} "
              f"{base / t:7.2f}x {'-' if r.first_audio is None else f'{1000 * r.first_audio:.0f} ms':>9s}")
    return results
