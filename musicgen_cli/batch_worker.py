"""One worker of `musicgen batch`: it holds each model it is asked for, loaded once, and turns a
task (items that share a model, length, sampling options and melody) into audio. It runs in the
command's own process or in a Ray actor on another machine (batch_ray.py), so it reads no file of
the user's and writes none: the melody comes with the task, and the audio goes back to the command
(batch.py), which writes it."""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass

from .errors import MusicgenError
from .files import one_line


@dataclass(frozen=True)
class Settings:
    """What every worker of a job shares (the command line's)."""

    device: str = "auto"
    backend: str = "auto"
    dtype: str = "auto"
    stride: float | None = None
    offline: bool = False
    threads: int | None = None  # torch's intra-op threads (None: torch's default)


@dataclass
class Task:
    """One batch: items (name, prompt, seed) of one model, duration and sampling; `melody`, if any,
    the tune every item follows, as read by the command: (samples [channels, n], sample rate)."""

    model: str | None
    duration: float
    sampling: tuple  # (top_k, top_p, temperature, cfg)
    items: list[tuple[str, str, int]]
    melody: tuple | None = None


@dataclass
class Result:
    """An item's audio [channels, samples] and what its sidecar records of the run, or its error."""

    name: str
    wav: object = None  # numpy float32
    record: dict | None = None
    error: str | None = None


class Worker:
    def __init__(self, settings: Settings = Settings()):
        self.settings = settings
        self.models: dict = {}  # (model, melody) -> a loaded MusicGen, or the error loading it gave
        if settings.threads:
            import torch

            torch.set_num_threads(settings.threads)
        if settings.offline:
            os.environ["HF_HUB_OFFLINE"] = "1"

    def model(self, name: str | None, melody: bool):
        """The model, loaded on first use and kept (a model that failed to load fails at once again)."""
        key = (name, melody)
        if key not in self.models:
            from .api import MusicGen

            s = self.settings
            try:
                self.models[key] = MusicGen.load(name, device=s.device, backend=s.backend, dtype=s.dtype, melody=melody)
                if melody:
                    self.models[key].require_melody()
            except MusicgenError as e:
                self.models[key] = e
        if isinstance(self.models[key], MusicgenError):
            raise self.models[key]
        return self.models[key]

    def run(self, task: Task) -> list[Result]:
        """The task's audio, one Result per item in its order; any error fails every item of it."""
        try:
            return self._run(task)
        except Exception as e:  # one failing task must not end the job: its items are recorded as failed
            return [Result(name, error=one_line(e, 500)) for name, _, _ in task.items]

    def _run(self, task: Task) -> list[Result]:
        import torch

        from . import jobs
        from .options import SamplingOptions

        mg = self.model(task.model, task.melody is not None)
        top_k, top_p, temperature, cfg = task.sampling
        options = SamplingOptions(top_k=top_k, top_p=top_p, temperature=temperature, cfg=cfg)
        names, prompts, seeds = zip(*task.items)
        melody = None if task.melody is None else self._melody(*task.melody)
        results = {}
        for rows in mg.batches(list(prompts), len(prompts)):  # melody-layout models: by token count
            start = time.perf_counter()
            kwargs = {} if melody is None else {"melody": melody.expand(len(rows), -1)}
            with torch.inference_mode():
                codes = mg.generate_codes([prompts[i] for i in rows], task.duration,
                                          dataclasses.replace(options, seeds=tuple(seeds[i] for i in rows)),
                                          self.settings.stride, **kwargs)
                wavs = mg.decode(codes).numpy()
            for i, wav in zip(rows, wavs):
                record = jobs.made_with(mg, self.settings.stride, start, int(wav.shape[0]))
                results[names[i]] = Result(names[i], wav, record)
        return [results[name] for name in names]

    @staticmethod
    def _melody(wav, sample_rate: int):
        import torch

        from . import audio, chroma

        return torch.from_numpy(audio.resample(audio.match_channels(wav, 1), sample_rate, chroma.SAMPLE_RATE))
