"""`musicgen batch`: every prompt of a file into a folder of clips, each with its sidecar, and a
`metadata.jsonl` that makes the folder a Hugging Face `audiofolder` dataset.

The command is the driver: it reads and checks the prompts file (batch_input.py), finds what the
folder already holds, plans the batches, hands them to workers (batch_worker.py: here, in this
process; batch_ray.py: Ray actors) and writes every file itself, so workers need no shared disk.

- Resumable: an item is finished when its audio file and its sidecar (same prompt and seed) are
  there; a rerun makes only the rest. Both are written atomically, the sidecar first, so a kill at
  any moment (SIGKILL too) loses at most the items in flight; their temp files are swept on rerun.
- Reproducible: each item's seed is its own (given, or derived from --seed and its name) and the
  batches are planned from the whole file, finished items included, so an item is made in the same
  batch on every run and every machine (on the default CPU path it would not matter: a piece does
  not depend on the pieces beside it; on the torch backend a batch's products round differently).
- A failing item (an unreadable melody, say) is recorded in failures.jsonl and the rest go on; the
  exit code is then 1.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Optional

import typer

from . import batch_input, files, interrupts, jobs
from .cli_options import BACKEND, CFG, DEVICE, DTYPE, OFFLINE, STRIDE, TEMPERATURE, TOP_K, TOP_P, model_option, normalize_option
from .errors import MusicgenError
from .options import check_device, check_duration, check_stride

err = jobs.err
LOCK = ".musicgen-batch.lock"
METADATA, FAILURES = "metadata.jsonl", "failures.jsonl"
METADATA_EVERY = 5.0  # seconds between rewrites of metadata.jsonl while a job runs (and at its end)
RAY_HINT = "--ray needs Ray: pip install 'musicgen-cli[ray]' (or pip install ray)"


def command(
    input: Path = typer.Argument(..., help="Prompts: a .txt file (one a line; # comments) or a .jsonl file of objects with \"prompt\" and optionally \"name\", \"duration\", \"seed\", \"melody\", \"format\", \"model\", \"top_k\", \"top_p\", \"temperature\", \"cfg\"."),
    out: Path = typer.Option(..., "--out", help="The folder for the clips (made if missing); rerun the same command to finish an interrupted job."),
    ray: Optional[str] = typer.Option(None, "--ray", help="Spread the work over a Ray cluster: local (started here) or a cluster's address (needs the ray extra)."),
    workers: Optional[int] = typer.Option(None, "--workers", help="With --ray: workers, each holding a model (default: one per GPU, else one per machine)."),
    batch_size: int = typer.Option(8, "--batch-size", help="Items of the same model, length and sampling made together."),
    duration: float = typer.Option(10.0, "--duration", "-d", help="Seconds of audio, for lines that don't say."),
    model: Optional[str] = model_option(),
    top_k: int = TOP_K,
    top_p: float = TOP_P,
    temperature: float = TEMPERATURE,
    cfg: float = CFG,
    seed: int = typer.Option(0, "--seed", help="Items without a seed get one derived from this and their name."),
    format: str = typer.Option("wav", "--format", help="wav, flac, ogg or mp3, for lines that don't say."),
    stride: Optional[float] = STRIDE,
    normalize: str = normalize_option("peak"),
    force: bool = typer.Option(False, "--force", "-f", help="Make every item again, replacing what the folder holds."),
    device: str = DEVICE,
    backend: str = BACKEND,
    dtype: str = DTYPE,
    offline: bool = OFFLINE,
) -> None:
    """Make a clip of every prompt in a file, resumably; on this machine or a Ray cluster."""
    from .batch_worker import Settings

    check_stride(stride)
    check_device(device)
    check_duration(duration)
    if f".{format.lower().lstrip('.')}" not in files.OUTPUT_FORMATS:
        raise MusicgenError(f"--format must be one of {', '.join(f[1:] for f in files.OUTPUT_FORMATS)}, got '{format}'")
    jobs.sampling_options(top_k, top_p, temperature, cfg, seed)  # checked now, not per line
    if normalize not in ("peak", "loudness", "none"):
        raise MusicgenError(f"--normalize must be peak, loudness or none, got '{normalize}'")
    if not 1 <= batch_size <= 64 or (workers is not None and workers < 1):
        raise MusicgenError("--batch-size must be from 1 to 64, and --workers at least 1")
    if workers is not None and ray is None:
        raise MusicgenError("--workers goes with --ray (on this machine one process makes every batch)")
    if ray is not None:
        from . import batch_ray

        batch_ray.require()
    defaults = {"duration": duration, "format": format, "model": model, "top_k": top_k, "top_p": top_p,
                "temperature": temperature, "cfg": cfg, "job_seed": seed}
    items = batch_input.read_items(input, defaults, lambda line: err.print(line, highlight=False, soft_wrap=True, markup=False))
    settings = Settings(device, backend, dtype, stride, offline)
    with Folder(out, items, force) as folder:
        tasks = plan(items, batch_size, folder.done)
        where = "on this machine" if ray is None else f"on Ray ({ray})"
        err.print(f"{len(items)} items: {len(folder.done)} already in {out}, {sum(len(t[1]) for t in tasks)} to make "
                  f"in {len(tasks)} batches {where}", highlight=False, soft_wrap=True)
        job = Job(folder, items, normalize, input)
        try:
            if ray is None:
                from .batch_worker import Worker

                run_here(Worker(settings), tasks, job)
            else:
                batch_ray.run(ray, workers, settings, tasks, job)
        finally:  # Ctrl-C too: the folder lists what it holds
            job.write_metadata()
        job.finish()


class Folder:
    """The output folder while a job writes in it: locked against a second job, our temp files of
    an earlier run swept, and what it already holds (items finished: their sidecars, by name)."""

    def __init__(self, path: Path, items: list, force: bool):
        self.path, self.items, self.force = Path(path).expanduser().resolve(), items, force
        self.done: dict[str, dict] = {}
        self.lock = None

    def __enter__(self) -> "Folder":
        if not self.path.parent.is_dir():
            raise MusicgenError(f"{self.path.parent} does not exist, so --out {self.path.name} cannot be made in it")
        try:
            self.path.mkdir(exist_ok=True)
        except (FileExistsError, OSError) as e:
            raise MusicgenError(f"cannot make the folder {self.path} ({getattr(e, 'strerror', None) or e})") from e
        if not self.path.is_dir():
            raise MusicgenError(f"--out {self.path} is a file, not a folder")
        files.check_output_path(self.path / f"{self.items[0].name}.wav", force=True)  # writable, really
        self._lock()
        self._sweep()
        conflicts = [c for item in self.items if (c := self._state(item))]
        for line in conflicts[:20]:
            err.print(line, highlight=False, soft_wrap=True, markup=False)
        if conflicts:
            raise MusicgenError(f"{len(conflicts)} file(s) in {self.path} are not this job's; move them away or pass --force")
        return self

    def __exit__(self, *exc) -> None:
        if self.lock is not None:
            os.close(self.lock)  # the lock goes with the descriptor (and with the process, if killed)

    def _lock(self) -> None:
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks; one job a folder is then up to the user
            return
        self.lock = os.open(self.path / LOCK, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(self.lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self.lock)
            self.lock = None
            raise MusicgenError(f"another musicgen batch is writing into {self.path}; wait for it to end") from None

    def _sweep(self) -> None:
        """Our temp files of this job's names (left by a kill): no other job writes here (the lock)."""
        stems = {i.name for i in self.items} | {Path(METADATA).stem, Path(FAILURES).stem}
        for entry in os.scandir(self.path):
            rest = entry.name[len(files.TEMP_PREFIX):] if entry.name.startswith(files.TEMP_PREFIX) else None
            if rest is not None and rest.split(".")[0] in stems:
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)

    def _state(self, item) -> str | None:
        """Note the item finished if it is; a line naming the conflict if its names hold files not
        made for it (another prompt or seed, or an audio file without a sidecar)."""
        audio, side = self.path / item.file_name, self.path / f"{item.name}.json"
        try:
            record = json.loads(side.read_text(encoding="utf-8")) if side.exists() else None
        except (OSError, ValueError):
            record = "unreadable"
        ours = isinstance(record, dict) and (record.get("prompt"), record.get("seed")) == (item.prompt, item.seed)
        if self.force or (record is None and not audio.exists()):
            return None
        if ours and audio.exists():
            self.done[item.name] = record
            return None
        if ours:  # a sidecar alone: killed between the two renames; made again
            return None
        what = f"{audio.name} has no sidecar" if record is None else f"{side.name} is another prompt's or seed's"
        return f"{self.path}: {what} (line {item.line} would make {item.file_name})"


def plan(items: list, size: int, done: dict) -> list[tuple]:
    """(task, names to write, melody path) for each batch with an item still to make. Batches are
    planned from every item, finished ones included, in the file's order: the same on every run."""
    from .batch_worker import Task

    groups: dict[tuple, list] = {}
    for item in items:
        groups.setdefault(item.key, []).append(item)
    batches = [group[i : i + size] for group in groups.values() for i in range(0, len(group), size)]
    batches.sort(key=lambda b: b[0].line)
    return [(Task(b[0].model, b[0].duration, b[0].sampling, [(i.name, i.prompt, i.seed) for i in b]),
             [i.name for i in b if i.name not in done], b[0].melody) for b in batches if any(i.name not in done for i in b)]


class Job:
    """The driver's side of a run: reads melodies for the workers, writes what they return (each
    item once), keeps metadata.jsonl current and the progress bar moving, and records failures."""

    def __init__(self, folder: Folder, items: list, normalize: str, source: Path):
        self.folder, self.normalize, self.source = folder, normalize, Path(source)
        self.items = {i.name: i for i in items}
        self.rows = {name: self._row(self.items[name], side) for name, side in folder.done.items()}
        self.failed: dict[str, str] = {}
        self.written: list[str] = []  # in the order written; each name once
        self.retried = 0  # batches given to another worker after theirs died
        self.metadata_at = 0.0  # when metadata.jsonl was last written
        self.start, self.progress = time.perf_counter(), None

    def ready(self, task, names: list[str], melody: str | None):
        """The task with its melody (a path relative to the prompts file's folder), read here, since
        workers see no files: (samples, rate). None, with the items recorded as failed, if unreadable."""
        if melody is None:
            return task
        from . import inputs

        where = Path(melody).expanduser()
        where = where if where.is_absolute() else self.source.parent / where
        try:
            tune = inputs.read_input(where, None, "silence has no melody to follow", first_seconds=task.duration)
        except MusicgenError as e:
            self.fail(names, str(e))
            return None
        return dataclasses.replace(task, melody=tune)

    def fail(self, names, error: str) -> None:
        for name in names:
            self.failed[name] = error
        self._advance(len(names))

    def deliver(self, results, names) -> None:
        """Write the results of a task's items `names` (the others were made in an earlier run)."""
        from . import audio

        count = 0
        for result in results:
            if result.name not in names or result.name in self.written:
                continue  # finished in an earlier run, or delivered already: each item is written once
            count += 1
            if result.error is not None:
                self.failed[result.name] = result.error
                continue
            item = self.items[result.name]
            sidecar = {"prompt": item.prompt, "name": item.name, "seed": item.seed, "duration": item.duration,
                       **dict(zip(batch_input.SAMPLING, item.sampling)), "normalize": self.normalize,
                       **({"melody": item.melody} if item.melody else {}), "line": item.line,
                       "prompts_file": str(self.source), **result.record}
            try:
                path = audio.write_audio(self.folder.path / item.file_name, result.wav, sidecar["sample_rate"],
                                         self.normalize, sidecar, force=True)
            except MusicgenError as e:
                self.failed[result.name] = str(e)
                continue
            interrupts.WRITTEN.append(path)
            self.written.append(result.name)
            self.failed.pop(result.name, None)
            self.rows[item.name] = self._row(item, sidecar)
        if time.perf_counter() - self.metadata_at > METADATA_EVERY:
            self.write_metadata()
        self._advance(count)

    def _row(self, item, side: dict) -> dict:
        return {"file_name": item.file_name, "prompt": item.prompt, "name": item.name, "seed": item.seed,
                "duration": item.duration, "model": side.get("model")}

    def write_metadata(self) -> None:
        """metadata.jsonl of the finished items, atomically (a rerun rebuilds it from the sidecars)."""
        self.metadata_at = time.perf_counter()
        rows = [self.rows[name] for name in self.items if name in self.rows]  # in the file's order
        lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        files.write_files([(self.folder.path / METADATA, lambda tmp: Path(tmp).write_text(lines, encoding="utf-8"))])

    def _advance(self, count: int) -> None:
        if self.progress is not None:
            bar, task = self.progress
            bar.update(task, advance=count, failed=len(self.failed))

    @contextlib.contextmanager
    def bar(self, total: int):
        """A progress bar: items done and failed, and the time left."""
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        columns = [TextColumn("batch"), BarColumn(bar_width=24),
                   TextColumn("{task.completed}/{task.total} items · {task.fields[failed]} failed"), TimeRemainingColumn()]
        with Progress(*columns, console=err) as bar:
            self.progress = (bar, bar.add_task("batch", total=total, failed=0))
            try:
                yield
            finally:
                self.progress = None

    def finish(self) -> None:
        """failures.jsonl (or none, once every item is made), the closing line, the exit code."""
        path = self.folder.path / FAILURES
        made = len(self.written)
        minutes = (time.perf_counter() - self.start) / 60
        retried = f"; {self.retried} batch(es) retried after a worker died" if self.retried else ""
        err.print(f"made {made} clips in {minutes * 60:.1f} s ({made / minutes if minutes else 0:.1f} clips a minute); "
                  f"{len(self.rows)} of {len(self.items)} are in {self.folder.path}{retried}", highlight=False, soft_wrap=True)
        if not self.failed:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            return
        rows = [{"line": self.items[n].line, "name": n, "prompt": self.items[n].prompt, "error": e}
                for n, e in sorted(self.failed.items(), key=lambda kv: self.items[kv[0]].line)]
        files.write_files([(path, lambda tmp: Path(tmp).write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"))])
        raise MusicgenError(f"{len(rows)} of {len(self.items)} items failed (the first: line {rows[0]['line']}, "
                            f"{rows[0]['error']}); each with its error in {path}; rerun to try them again")


def run_here(worker, tasks: list[tuple], job: Job) -> None:
    """Every task in this process, one after another."""
    with job.bar(sum(len(names) for _, names, _ in tasks)):
        for task, names, melody in tasks:
            if (task := job.ready(task, names, melody)) is not None:
                job.deliver(worker.run(task), names)

