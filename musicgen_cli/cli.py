"""The `musicgen` command line: parse, call the API, report. Every user error is one line on stderr."""

from __future__ import annotations

import dataclasses
import os
import secrets
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from . import __version__, files, interrupts, registry
from .errors import MusicgenError
from .options import (MAX_DURATION, MAX_SEED, NORMALIZATIONS, SamplingOptions, cap_prompt, check_continuation, check_device,
                      check_duration, check_stride, read_prompts)

# Nothing heavy is imported up here (torch, numpy, the model): arguments, paths and formats are
# checked first, so `--help`, `--version` and a mistyped option answer at once.

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    help="Generate music from text with MusicGen-compatible models, on your own machine.",
)
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


# Options every command takes (one definition each, shared by the commands' signatures).
DURATION_HELP = "Seconds of audio; past the model's window (30 s for the published models, 10 s for the bundled one) in overlapping windows."
OUTPUT = typer.Option(None, "--output", "-o", help="Output file: .wav, .flac, .ogg or .mp3.")
TOP_K = typer.Option(250, "--top-k", help="Sample from the k most likely tokens (1 = greedy, 0 = off).")
TOP_P = typer.Option(0.0, "--top-p", help="Nucleus sampling probability (0 = off).")
TEMPERATURE = typer.Option(1.0, "--temperature", help="Softmax temperature (0 = greedy).")
CFG = typer.Option(3.0, "--cfg", help="Classifier-free guidance scale (1 = no guidance).")
SEED = typer.Option(None, "--seed", help="Random seed; the same seed gives the same file.")
STRIDE = typer.Option(None, "--stride", help="Seconds each new window adds past the model's window (default: 60% of the window: 18 s for 30 s models, 6 s for the bundled one).")
FORCE = typer.Option(False, "--force", "-f", help="Overwrite existing output files.")
DEVICE = typer.Option("auto", "--device", help="auto, cpu or cuda.")
BACKEND = typer.Option("auto", "--backend", help="Decode path: auto (the fastest that works), torch (plain PyTorch), cpu or cuda.")
DTYPE = typer.Option("auto", "--dtype", help="Decoder weights on the fast paths: float32, bfloat16, int8 (CPU), or auto: int8 on the CPU fast path, float32 otherwise.")
OFFLINE = typer.Option(False, "--offline", help="Never use the network (as HF_HUB_OFFLINE=1): only cached or bundled models.")


def model_option(melody: bool = False):
    default, examples = ("melody", "melody, melody-large, stereo-melody") if melody else ("small", "small, medium, large, stereo-small")
    return typer.Option(None, "--model", "-m", show_default=False, help=(
        f"A published model ({examples}; `musicgen models` lists them), a hub id, a checkpoint folder, or "
        f"bundled (our small model, in the package). Default: {default}, downloaded on first use; offline and "
        "not cached: bundled."))


def normalize_option(default: str):
    return typer.Option(default, "--normalize", help="peak (-1 dBFS), loudness (-14 LUFS) or none.")


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


def load_model(model: Optional[str], device: str, backend: str, dtype: str, offline: bool, melody: bool = False):
    if offline:
        os.environ["HF_HUB_OFFLINE"] = "1"
    from .api import MusicGen

    with err.status(f"Loading {model or 'the default model'} ...", spinner="line"):
        mg = MusicGen.load(model, device=device, backend=backend, dtype=dtype, melody=melody)
    if mg.note:
        err.print(f"note: {mg.note}", highlight=False, soft_wrap=True)
    if melody:
        mg.require_melody()
    return mg


def announce(mg, count: int, seconds: float, what: str = "", channels: Optional[int] = None) -> None:
    layout = "stereo" if (channels or mg.channels) == 2 else "mono"
    err.print(f"{count} × {seconds:g} s of {layout} {mg.sample_rate} Hz audio from {mg.name}{what}", highlight=False, soft_wrap=True)


def finish(job: Job, mg, wavs, stride, start: float, per_output: list[dict], paths=None) -> None:
    """Write each output and its sidecar (the job's record, the model, timings and `per_output`)."""
    record = {
        **job.record, "model": mg.name, "model_folder": str(mg.folder), "stride": mg.default_stride if stride is None else stride,
        "sample_rate": mg.sample_rate, "channels": int(wavs[0].shape[0]), "device": str(mg.device),
        "backend": mg.backend.name, "dtype": mg.backend.dtype,
        "wall_time_s": round(time.perf_counter() - start, 3), "musicgen_version": __version__,
    }
    for path, wav, extra in zip(job.paths if paths is None else paths, wavs, per_output):
        write_output(path, wav, mg.sample_rate, job.normalize, {**extra, **record}, job.force)


@app.command()
def generate(
    prompts: Optional[list[str]] = typer.Argument(None, help="Text descriptions; one output file each."),
    model: Optional[str] = model_option(),
    duration: float = typer.Option(10.0, "--duration", "-d", help=DURATION_HELP),
    output: Optional[Path] = OUTPUT,
    prompts_file: Optional[Path] = typer.Option(None, "--prompts-file", help="A text file with one prompt per line."),
    top_k: int = TOP_K,
    top_p: float = TOP_P,
    temperature: float = TEMPERATURE,
    cfg: float = CFG,
    seed: Optional[int] = SEED,
    stride: Optional[float] = STRIDE,
    normalize: str = normalize_option("peak"),
    force: bool = FORCE,
    device: str = DEVICE,
    backend: str = BACKEND,
    dtype: str = DTYPE,
    offline: bool = OFFLINE,
) -> None:
    """Generate music from text descriptions."""
    prompts = read_prompts(prompts, prompts_file)
    prompts = [capped(p, f"prompt {i}" if len(prompts) > 1 else "the prompt") for i, p in enumerate(prompts, 1)]
    check_duration(duration)
    job = prepare(files.output_paths(prompts, output), force, normalize, top_k, top_p, temperature, cfg, seed, stride, device,
                  duration=duration, batch=prompts)
    mg = load_model(model, device, backend, dtype, offline)
    frames = mg.frames_for(duration)
    size = mg.batch_size(frames / mg.frame_rate, job.options.guided)
    batches = [range(i, min(i + size, len(prompts))) for i in range(0, len(prompts), size)]
    announce(mg, len(prompts), frames / mg.frame_rate, f" in {len(batches)} batches of at most {size} (sized to memory; "
             "each batch's files are written when it is done)" if len(batches) > 1 else "")
    for n, rows in enumerate(batches):
        start = time.perf_counter()
        options = dataclasses.replace(job.options, seed=(job.options.seed + n) % (MAX_SEED + 1))  # batch 0: the seed given
        chunk = [prompts[i] for i in rows]
        codes = with_progress(mg, frames, lambda progress: mg.generate_codes(chunk, duration, options, stride, progress))
        per_output = [{"prompt": prompts[i], "batch_index": i - rows[0], "batch_number": n, "batch_seed": options.seed,
                       "frames": frames} for i in rows]
        finish(job, mg, list(mg.decode(codes).cpu()), stride, start, per_output, [job.paths[i] for i in rows])


def read_input(path: Path, output: Optional[Path], what: str, max_seconds=MAX_DURATION, first_seconds=None) -> tuple:
    """Read the user's audio before any model loads: (wav [C, N] float32, sample rate); its length
    is checked from the header first (at most `max_seconds`), and only `first_seconds` are read if given."""
    from . import audio

    wav, sr = audio.read_audio(path, max_seconds, first_seconds)
    if audio.is_silent(wav):
        raise MusicgenError(f"{path} is silent; {what}")
    if output is not None and Path(output).expanduser().resolve() == Path(path).expanduser().resolve():
        raise MusicgenError(f"-o {output} is the input file; choose another output name")
    return wav, sr


@app.command("continue")
def continue_(
    input: Path = typer.Argument(..., help="Audio to carry on: WAV, FLAC, OGG or MP3, any rate, mono or stereo."),
    prompt: Optional[str] = typer.Option(None, "--prompt", "-p", help="Where the music should go, e.g. \"add a saxophone solo\"."),
    model: Optional[str] = model_option(),
    duration: Optional[float] = typer.Option(None, "--duration", "-d", help="Seconds of the whole output, input included (default: input + 10 s)."),
    prompt_seconds: Optional[float] = typer.Option(None, "--prompt-seconds", help="The model hears at most this many seconds of the input's end (default: 10, or a third of the model's window when that is less)."),
    only_new: bool = typer.Option(False, "--only-new", help="Write only the new part, not the input."),
    output: Optional[Path] = OUTPUT,
    top_k: int = TOP_K,
    top_p: float = TOP_P,
    temperature: float = TEMPERATURE,
    cfg: float = CFG,
    seed: Optional[int] = SEED,
    stride: Optional[float] = STRIDE,
    normalize: str = normalize_option("none"),
    force: bool = FORCE,
    device: str = DEVICE,
    backend: str = BACKEND,
    dtype: str = DTYPE,
    offline: bool = OFFLINE,
) -> None:
    """Carry on your audio: the output starts with your own samples, unchanged."""
    if prompt is not None and not prompt.strip():
        raise MusicgenError("--prompt is empty")
    prompt = capped(prompt, "--prompt")
    if duration is not None:
        check_duration(duration)
    wav, sr = read_input(input, output, "there is nothing to continue")  # the output holds all of it
    duration = wav.shape[1] / sr + 10.0 if duration is None else duration
    check_continuation(wav.shape[1] / sr, duration)
    if wav.shape[0] > 2:
        raise MusicgenError(f"{input} has {wav.shape[0]} channels; continue takes mono or stereo audio")
    path = output if output is not None else Path(f"{files.slug(input.stem)}-continued.wav")
    job = prepare([path], force, normalize, top_k, top_p, temperature, cfg, seed, stride, device, duration=duration,
                  input=str(input), prompt=prompt, only_new=only_new)
    mg = load_model(model, device, backend, dtype, offline)
    from . import audio, continuation

    prompt_seconds = continuation.default_prompt_seconds(mg) if prompt_seconds is None else prompt_seconds
    job.record["prompt_seconds"] = prompt_seconds
    wav = audio.resample(wav, sr, mg.sample_rate)
    continuation.plan(mg, wav.shape[1], duration, prompt_seconds)
    announce(mg, 1, duration, f", continuing {input.name}", channels=max(wav.shape[0], mg.channels))
    start = time.perf_counter()
    out = with_progress(mg, mg.frames_for(duration), lambda progress: continuation.continue_audio(
        mg, wav, duration, prompt_seconds, prompt, job.options, stride, progress))
    finish(job, mg, [out[:, wav.shape[1] :] if only_new else out], stride, start, [{}])


@app.command()
def melody(
    input: Path = typer.Argument(..., help="The tune to follow (hummed, sung, played): WAV, FLAC, OGG or MP3."),
    style: Optional[str] = typer.Option(None, "--style", "-s", help="The music around it: \"orchestral\", or a whole sentence."),
    model: Optional[str] = model_option(melody=True),
    duration: Optional[float] = typer.Option(None, "--duration", "-d", help="Seconds of audio (default: the melody's length; a shorter melody loops)."),
    output: Optional[Path] = OUTPUT,
    top_k: int = TOP_K,
    top_p: float = TOP_P,
    temperature: float = TEMPERATURE,
    cfg: float = CFG,
    seed: Optional[int] = SEED,
    stride: Optional[float] = STRIDE,
    normalize: str = normalize_option("peak"),
    force: bool = FORCE,
    device: str = DEVICE,
    backend: str = BACKEND,
    dtype: str = DTYPE,
    offline: bool = OFFLINE,
) -> None:
    """Make music that follows a melody (needs a melody model: melody, melody-large, stereo-melody, bundled)."""
    if style is not None and not style.strip():
        raise MusicgenError("--style is empty")
    style = capped(style, "--style")
    if duration is not None:
        check_duration(duration)
    wav, sr = read_input(input, output, "silence has no melody to follow", first_seconds=duration)
    duration = check_duration(wav.shape[1] / sr if duration is None else duration)
    name = f"{files.slug(input.stem)}-{files.slug(style) if style else 'melody'}.wav"
    job = prepare([output if output is not None else Path(name)], force, normalize, top_k, top_p, temperature,
                  cfg, seed, stride, device, duration=duration, input=str(input), style=style)
    mg = load_model(model, device, backend, dtype, offline, melody=True)
    import torch

    from . import audio, chroma

    tune = torch.from_numpy(audio.resample(audio.match_channels(wav, 1), sr, chroma.SAMPLE_RATE))
    frames = mg.frames_for(duration)
    announce(mg, 1, frames / mg.frame_rate, f", following {input.name}")
    start = time.perf_counter()
    codes = with_progress(mg, frames, lambda progress: mg.generate_codes(
        [style], duration, job.options, stride, progress, melody=tune))
    finish(job, mg, [mg.decode(codes)[0].cpu()], stride, start, [{}])


def with_progress(mg, frames: int, run):
    """Call run(progress_callback) under a progress bar (under 80 columns): seconds of audio made,
    steps per second, time left."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    seconds = frames / mg.frame_rate
    done = TextColumn("{task.fields[made]:.1f}/" + f"{seconds:.1f} s audio" + " · {task.fields[rate]:.0f} steps/s")
    columns = [TextColumn("generating"), BarColumn(bar_width=24), done, TimeRemainingColumn()]
    with Progress(*columns, console=err) as bar:
        task = bar.add_task("generate", total=None, made=0.0, rate=0.0)

        def update(step: int, total: int) -> None:
            bar.update(task, completed=step, total=total, made=seconds * step / total if total else 0.0,
                       rate=bar.tasks[0].speed or 0.0)

        return run(update)


def write_output(path: Path, wav, sample_rate: int, normalize: str, sidecar: dict, force: bool) -> None:
    from . import audio

    written = audio.write_audio(path, wav, sample_rate, normalization=normalize, sidecar=sidecar, force=force)
    interrupts.WRITTEN.append(written)
    what = f"({wav.shape[-1] / sample_rate:.1f} s, {wav.shape[0]} ch, {sample_rate} Hz)"
    if written != path:
        err.print(f"{path} appeared while this run worked, so it was kept; wrote {written} instead {what}", highlight=False, soft_wrap=True)
    else:
        err.print(f"wrote {path} {what}", highlight=False)


@app.command()
def models() -> None:
    """List the models musicgen knows: published ones (cached or not, and where) and the bundled one."""
    from . import hub

    print(f"{'name':<20} {'hub id':<38} {'decoder':<10} {'window':>6}  {'audio':<6} {'melody':<6} cached")
    for k in registry.KNOWN.values():
        folder = hub.cached(k.repo)
        where = f"yes, {folder}" if folder else "no"
        print(f"{k.name:<20} {k.repo:<38} {k.decoder:<10} {k.window:>5g}s  {'stereo' if k.stereo else 'mono':<6} "
              f"{'yes' if k.melody else 'no':<6} {where}")
    b = registry.bundled()
    print(f"{b.name:<20} {'(in the package)':<38} {b.decoder:<10} {b.window:>5g}s  {'stereo' if b.stereo else 'mono':<6} "
          f"{'yes' if b.melody else 'no':<6} {registry.BUNDLED_FOLDER}")


@app.command()
def download(name: str = typer.Argument(..., help="A published model's short name (small, melody, ...) or a hub id.")) -> None:
    """Fetch a model into the Hugging Face cache without generating."""
    from . import hub

    repo = registry.hub_id(name)
    if repo is None:
        raise MusicgenError(f"'{name}' is not a known model name or hub id{registry.suggestion(name)}")
    folder = hub.cached(repo)
    if folder is None:
        folder = hub.download(repo)
    print(folder)


@app.command()
def bench(
    size: str = typer.Option("small", "--size", help="Published decoder size: small, medium or large (random weights)."),
    dtype: str = typer.Option("float32,bfloat16,int8", "--dtype", help="Our decoder dtypes to time, comma-separated."),
    backend: str = BACKEND,
    device: str = DEVICE,
    steps: int = typer.Option(100, "--steps", help="Decode steps per run (50 = 1 s of audio)."),
    repeats: int = typer.Option(3, "--repeats", help="Timed runs per side (the median is shown)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads (default: torch's)."),
) -> None:
    """Time decoding next to transformers' generate on the same random weights; print ratios."""
    from . import bench as benchmark

    if size not in benchmark.SIZES:
        raise MusicgenError(f"--size must be one of {', '.join(benchmark.SIZES)}")
    if steps < 4 or repeats < 1:
        raise MusicgenError("--steps must be at least 4 and --repeats at least 1")
    dtypes = [d.strip() for d in dtype.split(",") if d.strip()]
    if not dtypes or any(d not in ("float32", "bfloat16", "int8") for d in dtypes):
        raise MusicgenError("--dtype takes float32, bfloat16 and int8, comma-separated")
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise MusicgenError("--device cuda was asked for, but this torch has no usable CUDA device")
    benchmark.run(size, dtypes, backend, device, steps, repeats, threads)


def show_version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def options(version: bool = typer.Option(False, "--version", callback=show_version, is_eager=True,
                                         help="Print the version and exit.")) -> None:
    """Generate music from text with MusicGen-compatible models, on your own machine."""


def main(argv: Optional[list[str]] = None) -> None:
    """Entry point: one clear line on stderr and a non-zero exit for bad input, never a traceback."""
    command = typer.main.get_command(app)
    previous = interrupts.start()
    try:
        code = command.main(args=argv, prog_name="musicgen", standalone_mode=False)
    except typer.Exit as e:
        code = e.exit_code
    except typer.TyperException as e:  # usage errors: unknown option, a value that is not a number, ...
        message = e.format_message() if hasattr(e, "format_message") else str(e)
        if type(e).__name__ == "NoArgsIsHelpError":
            print(message, file=sys.stderr)
        else:
            print(f"musicgen: error: {' '.join(message.split())}", file=sys.stderr)
        sys.exit(getattr(e, "exit_code", 2))
    except (KeyboardInterrupt, typer.Abort):
        code = 130
    except MusicgenError as e:
        print(f"musicgen: error: {e}", file=sys.stderr)
        sys.exit(1)
    finally:
        interrupts.stop(previous)
    if code == 130:  # Ctrl-C (typer turns it into exit code 130 itself) or SIGTERM
        print(interrupts.last_line(), file=sys.stderr)
        code = interrupts.exit_code()
    sys.exit(code if isinstance(code, int) else 0)
