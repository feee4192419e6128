"""A command's job: what is checked before any model loads (outputs, sampling options, stride,
device, prompt length), recorded next to every output, and the writing of each file with its
sidecar. One module so that what is checked and what is recorded stay together."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from rich.console import Console

from . import __version__, files, interrupts
from .errors import MusicgenError
from .options import NORMALIZATIONS, SamplingOptions, cap_prompt, check_device, check_stride

err = Console(stderr=True)


def capped(text: Optional[str], what: str) -> Optional[str]:
    if text is None:
        return None
    text, note = cap_prompt(text, what)
    if note:
        err.print(f"note: {note}", highlight=False, soft_wrap=True)
    return text


def sampling_options(top_k, top_p, temperature, cfg, seed) -> SamplingOptions:
    try:
        return SamplingOptions(top_k=top_k, top_p=top_p, temperature=temperature, cfg=cfg, seed=seed)
    except ValueError as e:
        raise MusicgenError(str(e))


@dataclass
class Job:
    """What every command checks before loading a model, and records next to its outputs."""

    paths: list[Path]
    options: SamplingOptions
    normalize: str
    record: dict
    force: bool = False


def prepare(paths, force, normalize, top_k, top_p, temperature, cfg, seed, stride, device, **record) -> Job:
    check_stride(stride)
    check_device(device)
    if normalize not in NORMALIZATIONS:
        raise MusicgenError(f"--normalize must be one of {', '.join(NORMALIZATIONS)}, got '{normalize}'")
    paths = files.check_outputs(paths, force)
    seed = secrets.randbelow(2**31) if seed is None else seed
    options = sampling_options(top_k, top_p, temperature, cfg, seed)
    fields = {"seed": seed, "top_k": top_k, "top_p": top_p, "temperature": temperature, "cfg": cfg, "normalize": normalize}
    return Job(paths, options, normalize, {**record, **fields}, force)


def finish(job: Job, mg, wavs, stride, start: float, per_output: list[dict], loop: bool = False, paths=None) -> None:
    """Write each output (`paths`, else the job's) and its sidecar (the job's record, the model,
    timings and `per_output`); `loop`: each file is one loop, in its sidecar and a WAV's loop chunk."""
    record = {**job.record, **made_with(mg, stride, start, int(wavs[0].shape[0]))}
    for path, wav, extra in zip(job.paths if paths is None else paths, wavs, per_output):
        points = (0, wav.shape[-1] - 1) if loop else None
        side = {**extra, **{k: v for k, v in record.items() if k not in extra},  # an output's own seed wins
                **({"loop_start": 0, "loop_end": points[1]} if loop else {})}
        write_output(path, wav, mg.sample_rate, job.normalize, side, job.force, points)


def made_with(mg, stride, start: float, channels: int) -> dict:
    """What a sidecar records of the model and the run that made a file (`start`: perf_counter)."""
    return {
        "model": mg.name, "model_folder": str(mg.folder), "stride": mg.default_stride if stride is None else stride,
        "sample_rate": mg.sample_rate, "channels": channels, "device": str(mg.device),
        "backend": mg.backend.name, "dtype": mg.backend.dtype,
        "wall_time_s": round(time.perf_counter() - start, 3), "musicgen_version": __version__,
    }


def write_output(path: Path, wav, sample_rate: int, normalize: str, sidecar: dict, force: bool, loop=None) -> None:
    from . import audio

    written = audio.write_audio(path, wav, sample_rate, normalization=normalize, sidecar=sidecar, force=force, loop=loop)
    interrupts.WRITTEN.append(written)
    what = f"({wav.shape[-1] / sample_rate:.1f} s, {wav.shape[0]} ch, {sample_rate} Hz)"
    if written != path:
        err.print(f"{path} appeared while this run worked, so it was kept; wrote {written} instead {what}", highlight=False, soft_wrap=True)
    else:
        err.print(f"wrote {path} {what}", highlight=False)
