"""The `musicgen` command line: parse, call the API, report. Every user error is one line on stderr."""

from __future__ import annotations

import dataclasses
import inspect
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Optional

import typer

from . import __version__, batch, files, inputs, interrupts, jobs, registry, streaming
from .errors import MusicgenError, warning_line
from .cli_options import (BACKEND, BARS, BPM, CFG, DEVICE, DTYPE, DURATION_HELP, FORCE, LOOP, METER, OFFLINE, OUTPUT,
                          PLAY, SEED, STRIDE, TEMPERATURE, TOP_K, TOP_P, model_option, normalize_option)
from .options import MAX_SEED, PROMPT_SECONDS, check_continuation, check_duration, check_prompt_seconds

# Nothing heavy is imported up here (torch, numpy, the model): arguments, paths and formats are
# checked first, so `--help`, `--version` and a mistyped option answer at once.

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    help="Generate music from text with MusicGen-compatible models, on your own machine.",
)
err = jobs.err  # one console on stderr for the progress bar and every line


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


def announce(mg, count: int, seconds: float, what: str = "", channels: Optional[int] = None, stream=None, seed=None) -> None:
    layout = "stereo" if (channels or mg.channels) == 2 else "mono"
    length = "endless" if seconds == float("inf") else f"{seconds:g} s"
    how = f", {'streamed' if stream.stdout else 'played'} as it is made (seed {seed})" if stream and stream.on else ""
    err.print(f"{count} × {length} of {layout} {mg.sample_rate} Hz audio from {mg.name}{what}{how}", highlight=False, soft_wrap=True)


def given(ctx: typer.Context, names) -> set[str]:
    """Which of these parameters the command line set (the rest are defaults)."""
    return {n for n in names if (source := ctx.get_parameter_source(n)) is not None and source.name == "COMMANDLINE"}


def given_value(ctx: typer.Context, name: str, value):
    """`value` if the command line set parameter `name`, else None."""
    return value if given(ctx, [name]) else None


@app.command()
def generate(
    ctx: typer.Context,
    prompts: Optional[list[str]] = typer.Argument(None, help="Text descriptions; one output file each."),
    again: Optional[Path] = typer.Option(None, "--again", help="Make a take again from its file or sidecar: its prompt, model, seed and settings (options given here win, e.g. a new --seed or --duration)."),
    model: Optional[str] = model_option(),
    duration: Optional[float] = typer.Option(None, "--duration", "-d", help=DURATION_HELP + " Default: 10."),
    bpm: Optional[float] = BPM,
    bars: Optional[int] = BARS,
    meter: str = METER,
    loop: bool = LOOP,
    output: Optional[Path] = OUTPUT,
    play: bool = PLAY,
    prompts_file: Optional[Path] = typer.Option(None, "--prompts-file", help="A text file with one prompt per line."),
    variations: int = typer.Option(1, "--variations", help="Takes of each prompt, made in one batch (NAME-1, NAME-2, ...; the n-th file's seed is --seed + n - 1, and each can be made again alone with --again)."),
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
    from . import loops, takes

    if again is not None:  # the take's settings (its own seed), then this command again without --again
        take, params = takes.read(again), dict(locals())
        params = takes.settings(take, params, given(ctx, takes.SETTINGS))
        if not prompts and not prompts_file:  # a take is the same piece alone as in the batch it was made in
            params["prompts"], params["variations"] = [take.get("prompt")], 1
        params.update(again=None, output=output or takes.again_output(again), take=None, ctx=ctx)
        return generate(**{k: v for k, v in params.items() if k in GENERATE_PARAMS})
    prompts = inputs.read_prompts(prompts, prompts_file)
    prompts = [jobs.capped(p, f"prompt {i}" if len(prompts) > 1 else "the prompt") for i, p in enumerate(prompts, 1)]
    if not 1 <= variations <= 64:
        raise MusicgenError(f"--variations must be from 1 to 64, got {variations}")
    prompts = [p for p in prompts for _ in range(variations)]
    stream = streaming.request(output, play, duration, loop, len(prompts), given_value(ctx, "normalize", normalize))
    seconds = float("inf") if stream.endless else loops.length(duration, bars, bpm, meter, default=10.0)
    job = jobs.prepare(stream.files(files.output_paths(prompts, output)), force, normalize, top_k, top_p, temperature,
                       cfg, seed, stride, device, duration=seconds, **loops.record(bpm, bars, meter, loop))
    mg = load_model(model, device, backend, dtype, offline)
    made = seconds if stream.endless else loops.to_make(mg.frame_rate, seconds, bpm, bars, loop)
    frames = None if stream.endless else mg.frames_for(made)
    size = len(prompts) if stream.on else mg.batch_size(frames / mg.frame_rate, job.options.guided)
    batches = mg.batches(prompts, size)
    why = "sized to memory" + ("; prompts of other lengths apart" if mg.melody else "")
    announce(mg, len(prompts), seconds if bars or loop or stream.endless else frames / mg.frame_rate, f" in {len(batches)} "
             f"batches of at most {size} ({why}; each batch's files are written when it is done)" if len(batches) > 1 else "",
             stream=stream, seed=job.options.seed)
    seeds = [(job.options.seed + i) % (MAX_SEED + 1) for i in range(len(prompts))]  # each file's own
    for rows in batches:
        start = time.perf_counter()
        options = dataclasses.replace(job.options, seeds=tuple(seeds[i] for i in rows))
        chunk = [prompts[i] for i in rows]
        with streaming.listening(stream, mg, length(mg, frames, seconds, bars), err.print) as listen:
            codes = jobs.with_progress(mg, frames, lambda progress: mg.generate_codes(
                chunk, made, options, stride, progress, on_frames=listen))
        if not job.paths:
            return
        per_output = [{"prompt": prompts[i], "seed": seeds[i], "frames": frames} for i in rows]
        jobs.finish(job, mg, decoded(mg, codes, seconds, bars, loop), stride, start, per_output, loop,
                    [job.paths[i] for i in rows])


GENERATE_PARAMS = set(inspect.signature(generate).parameters)


def decoded(mg, codes, seconds: float, bars, loop: bool) -> list:
    """The waveforms of `codes`; with whole bars or a loop, cut to exactly `seconds` (and closed)."""
    from . import loops

    wav = mg.decode(codes).numpy()
    return loops.fit_length(wav, seconds, mg.sample_rate, loop) if bars or loop else list(wav)


def length(mg, frames: Optional[int], seconds: float, bars) -> Optional[int]:
    """The samples `decoded` gives without a loop (None: a stream without end)."""
    return None if frames is None else round(seconds * mg.sample_rate) if bars else frames * mg.codec.hop_length


@app.command("continue")
def continue_(
    ctx: typer.Context,
    input: Path = typer.Argument(..., help="Audio to carry on: WAV, FLAC, OGG or MP3, any rate, mono or stereo."),
    prompt: Optional[str] = typer.Option(None, "--prompt", "-p", help="Where the music should go, e.g. \"add a saxophone solo\"."),
    model: Optional[str] = model_option(),
    duration: Optional[float] = typer.Option(None, "--duration", "-d", help="Seconds of the whole output, input included (default: input + 10 s)."),
    bpm: Optional[float] = BPM,
    bars: Optional[int] = typer.Option(None, "--bars", help="Add this many bars of --meter at --bpm (instead of --duration)."),
    meter: str = METER,
    prompt_seconds: Optional[float] = typer.Option(None, "--prompt-seconds", help="The model hears at most this many seconds of the input's end (default: 10, or a third of the model's window when that is less)."),
    only_new: bool = typer.Option(False, "--only-new", help="Write only the new part, not the input."),
    output: Optional[Path] = OUTPUT,
    play: bool = PLAY,
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
    """Carry on your audio: the output starts with your own samples, unchanged. A take of ours
    carries on in its own voice: its prompt, model and settings (options given here win)."""
    from . import takes

    take = takes.find(input)
    if take is not None:
        params = takes.settings(take, dict(locals()), given(ctx, takes.CONTINUE), takes.CONTINUE)
        model, top_k, top_p, temperature, cfg, stride, device, backend, dtype, bpm, meter = (
            params[k] for k in takes.CONTINUE)
        if prompt is None:
            prompt = take.get("prompt") or take.get("style")
    if prompt is not None and not prompt.strip():
        raise MusicgenError("--prompt is empty")
    prompt = jobs.capped(prompt, "--prompt")
    stream = streaming.request(output, play, duration, normalize=given_value(ctx, "normalize", normalize))
    check_prompt_seconds(prompt_seconds)
    frames, sr, channels = inputs.audio_length(input)  # the header: the rest is read once checked
    from . import loops

    if duration is None or bars is not None:  # the bars (or 10 s) added to the input; both given: an error
        duration = frames / sr + loops.length(duration, bars, bpm, meter, default=10.0)
    if not stream.endless:
        check_continuation(frames / sr, duration, only_new)
    if channels > 2:
        raise MusicgenError(f"{input} has {channels} channels; continue takes mono or stereo audio")
    # with --only-new, only what the model hears is read (the default is at most PROMPT_SECONDS)
    wav, sr, first = inputs.read_end(input, stream.output(output), (prompt_seconds or PROMPT_SECONDS) if only_new else None)
    path = output if output is not None else Path(f"{files.slug(input.stem)}-continued.wav")
    job = jobs.prepare(stream.files([path]), force, normalize, top_k, top_p, temperature, cfg, seed, stride, device, duration=duration,
                  input=str(input), prompt=prompt, only_new=only_new, **loops.record(bpm, bars, meter, False))
    mg = load_model(model, device, backend, dtype, offline)
    from . import continuation

    prompt_seconds = continuation.default_prompt_seconds(mg) if prompt_seconds is None else prompt_seconds
    job.record["prompt_seconds"] = prompt_seconds
    wav, before = continuation.at_model_rate(mg, wav, sr, first)
    prompt_samples, made = continuation.plan(mg, before + wav.shape[1], duration, prompt_seconds, available=wav.shape[1])
    written = duration - (before + wav.shape[1]) / mg.sample_rate if only_new else duration
    announce(mg, 1, written, f", continuing {input.name}", max(wav.shape[0], mg.channels), stream, job.options.seed)
    start = time.perf_counter()
    splice = continuation.splicer(mg, wav, duration, prompt_samples, before)
    with streaming.listening(stream, mg, splice.total, err.print, splice, start=wav.shape[1] if only_new else 0) as listen:
        out = jobs.with_progress(mg, None if stream.endless else made, lambda progress: continuation.continue_audio(
            mg, wav, duration, prompt_seconds, prompt, job.options, stride, progress, before, on_frames=listen))
    if job.paths:
        jobs.finish(job, mg, [out[:, wav.shape[1] :] if only_new else out], stride, start, [{}])


@app.command()
def melody(
    ctx: typer.Context,
    input: Optional[Path] = typer.Argument(None, help="The tune to follow: audio (hummed, sung, played: WAV, FLAC, OGG, MP3) or a MIDI file."),
    style: Optional[str] = typer.Option(None, "--style", "-s", help="The music around it: \"orchestral\", or a whole sentence."),
    chords: Optional[str] = typer.Option(None, "--chords", help="A chord chart to follow instead of a file, e.g. \"Am F C G\" (each chord's root)."),
    bpm: Optional[float] = typer.Option(None, "--bpm", help="Tempo in beats a minute: of --chords (default 120), and of --bars."),
    bars: Optional[int] = BARS,
    meter: str = METER,
    loop: bool = LOOP,
    beats_per_chord: float = typer.Option(4.0, "--beats-per-chord", help="Beats each chord of --chords lasts."),
    track: Optional[str] = typer.Option(None, "--track", help="The MIDI track with the melody, by name or number (default: one named melody/lead/vocal..., else all, highest note wins)."),
    model: Optional[str] = model_option(melody=True),
    duration: Optional[float] = typer.Option(None, "--duration", "-d", help="Seconds of audio (default: the melody's length; a shorter melody loops); inf with -o - or --play: until Ctrl-C."),
    output: Optional[Path] = OUTPUT,
    play: bool = PLAY,
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
    """Make music that follows a melody: a recording, a MIDI file or a chord chart (needs a melody model)."""
    if style is not None and not style.strip():
        raise MusicgenError("--style is empty")
    style = jobs.capped(style, "--style")
    from . import loops

    stream = streaming.request(output, play, duration, loop, normalize=given_value(ctx, "normalize", normalize))
    endless = stream.endless
    if duration is not None and not endless:
        check_duration(duration)
    kind, tune, seconds, what = inputs.read_tune(input, stream.output(output), chords, bpm or 120.0, beats_per_chord,
                                                 track, None if endless else duration)
    duration = float("inf") if endless else loops.length(duration, bars, bpm, meter, default=seconds)
    name = f"{files.slug(input.stem) if input else 'chords'}-{files.slug(style) if style else 'melody'}.wav"
    job = jobs.prepare(stream.files([output if output is not None else Path(name)]), force, normalize, top_k, top_p, temperature,
                  cfg, seed, stride, device, duration=duration, input=str(input) if input else None, style=style,
                  **{**({"chords": chords, "bpm": bpm or 120.0, "beats_per_chord": beats_per_chord} if chords else {}),
                     **({"track": track} if track else {}), **loops.record(bpm, bars, meter, loop)})
    mg = load_model(model, device, backend, dtype, offline, melody=True)
    import torch

    from . import audio, chroma

    if kind == "audio":
        wav, sr = tune
        kwargs = {"melody": torch.from_numpy(audio.resample(audio.match_channels(wav, 1), sr, chroma.SAMPLE_RATE))}
    else:
        kwargs = {"score": torch.from_numpy(tune)[None]}
    made = duration if endless else loops.to_make(mg.frame_rate, duration, bpm, bars, loop)
    frames = None if endless else mg.frames_for(made)
    announce(mg, 1, duration if bars or loop or endless else frames / mg.frame_rate, f", following {what}", None, stream,
             job.options.seed)
    start = time.perf_counter()
    with streaming.listening(stream, mg, length(mg, frames, duration, bars), err.print) as listen:
        codes = jobs.with_progress(mg, frames, lambda progress: mg.generate_codes(
            [style], made, job.options, stride, progress, on_frames=listen, **kwargs))
    if not job.paths:
        return
    wav = decoded(mg, codes, duration, bars, loop)
    jobs.finish(job, mg, [wav[0]], stride, start, [{}], loop)


app.command("batch")(batch.command)  # musicgen_cli/batch.py: many prompts, resumable, on Ray or not


@app.command()
def models() -> None:
    """List the models musicgen knows: published ones (cached or not, and where) and the bundled one."""
    from . import hub

    def row(name, repo, decoder, window, audio, melody, where) -> None:
        print(f"{name:<20} {repo:<38} {decoder:<10} {window:>6}  {audio:<6} {melody:<6} {where}")

    row("name", "hub id", "decoder", "window", "audio", "melody", "cached")
    for k in [*registry.KNOWN.values(), registry.bundled()]:
        folder = None if k.name == registry.BUNDLED else hub.cached(k.repo)
        where = registry.BUNDLED_FOLDER if k.name == registry.BUNDLED else f"yes, {folder}" if folder else "no"
        row(k.name, k.repo or "(in the package)", k.decoder, f"{k.window:g}s", "stereo" if k.stereo else "mono",
            "yes" if k.melody else "no", where)


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
    size: str = typer.Option("small", "--size", help="Decoder size (random weights): small, medium or large as published; tiny checks that the benchmark runs."),
    dtype: str = typer.Option("float32,bfloat16,int8", "--dtype", help="Our decoder dtypes to time, comma-separated."),
    backend: str = BACKEND,
    device: str = DEVICE,
    steps: int = typer.Option(100, "--steps", help="Decode steps per run (50 = 1 s of audio)."),
    repeats: int = typer.Option(3, "--repeats", help="Timed runs per side (the median is shown)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads (default: torch's)."),
    reference_steps: Optional[int] = typer.Option(None, "--reference-steps", help="transformers' steps per run (default: --steps)."),
) -> None:
    """Time decoding next to transformers' generate on the same random weights; print ratios."""
    from . import bench as benchmark

    if size not in benchmark.SIZES:
        raise MusicgenError(f"--size must be one of {', '.join(benchmark.SIZES)}")
    if min(steps, reference_steps or steps) < 4 or repeats < 1:
        raise MusicgenError("--steps and --reference-steps must be at least 4 and --repeats at least 1")
    dtypes = [d.strip() for d in dtype.split(",") if d.strip()]
    if not dtypes or any(d not in ("float32", "bfloat16", "int8") for d in dtypes):
        raise MusicgenError("--dtype takes float32, bfloat16 and int8, comma-separated")
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise MusicgenError("--device cuda was asked for, but this torch has no usable CUDA device")
    benchmark.run(size, dtypes, backend, device, steps, repeats, threads, reference_steps)


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
    previous, shown = interrupts.start(), warnings.showwarning
    warnings.showwarning = warning_line
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
        warnings.showwarning = shown
    if code == 130:  # Ctrl-C (typer turns it into exit code 130 itself) or SIGTERM
        print(interrupts.last_line(), file=sys.stderr)
        code = interrupts.exit_code()
    sys.exit(code if isinstance(code, int) else 0)
