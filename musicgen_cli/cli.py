"""The `musicgen` command line: parse, call the API, report. Every user error is one line on stderr."""

from __future__ import annotations

import re
import secrets
import sys
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
from rich.text import Text

from . import __version__, audio, checkpoints
from .errors import MusicgenError
from .sampling import SamplingOptions

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    help="Generate music from text with MusicGen-compatible models, on your own machine.",
)
err = Console(stderr=True)


class RateColumn(ProgressColumn):
    """Frames done / total, seconds of audio, steps per second."""

    def render(self, task) -> Text:
        f = task.fields
        frames = int(task.completed / task.total * f["frames"]) if task.total else 0
        rate = task.speed or 0.0
        return Text(f"{frames}/{f['frames']} frames · {frames / f['frame_rate']:.1f} s audio · {rate:.1f} steps/s")


def read_prompts(prompts: list[str], prompts_file: Optional[Path]) -> list[str]:
    prompts = list(prompts or [])
    if prompts_file is not None:
        try:
            lines = prompts_file.read_text(encoding="utf-8").splitlines()
        except IsADirectoryError:
            raise MusicgenError(f"prompts file {prompts_file} is a directory")
        except (OSError, UnicodeDecodeError) as e:
            raise MusicgenError(f"cannot read prompts file {prompts_file}: {e.strerror or e}")
        from_file = [line.strip() for line in lines if line.strip()]
        if not from_file:
            raise MusicgenError(f"prompts file {prompts_file} has no prompts (one per line)")
        prompts += from_file
    if not prompts:
        raise MusicgenError("give a description, e.g. musicgen generate \"lo-fi jazz\", or --prompts-file")
    if any(not p.strip() for p in prompts):
        raise MusicgenError("a prompt is empty")
    return prompts


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60].strip("-") or "musicgen"


def output_paths(prompts: list[str], output: Optional[Path]) -> list[Path]:
    """-o song.wav names the file (song-1.wav, song-2.wav, ... for several prompts);
    without -o each file is named after its prompt, in the current folder."""
    if output is not None:
        if len(prompts) == 1:
            return [output]
        return [output.with_name(f"{output.stem}-{i}{output.suffix}") for i in range(1, len(prompts) + 1)]
    names: list[Path] = []
    for p in prompts:
        base, n = slug(p), 1
        name = Path(f"{base}.wav")
        while name in names:
            n += 1
            name = Path(f"{base}-{n}.wav")
        names.append(name)
    return names


def check_outputs(paths: list[Path], force: bool) -> list[Path]:
    checked = [audio.check_output_path(p, force) for p in paths]
    for p in checked:
        side = audio.sidecar_path(p)
        if side.exists() and not force:
            raise MusicgenError(f"{side} (the sidecar of {p.name}) exists; pass --force to overwrite")
    if len(set(checked)) != len(checked):
        raise MusicgenError("two outputs would get the same file name; use distinct -o names")
    return checked


def sampling_options(top_k, top_p, temperature, cfg, seed) -> SamplingOptions:
    try:
        return SamplingOptions(top_k=top_k, top_p=top_p, temperature=temperature, cfg=cfg, seed=seed)
    except ValueError as e:
        raise MusicgenError(str(e))


@app.command()
def generate(
    prompts: Optional[list[str]] = typer.Argument(None, help="Text descriptions; one output file each."),
    model: str = typer.Option(checkpoints.DEFAULT_MODEL, "--model", "-m", help="Checkpoint folder or hub id (from the local hub cache)."),
    duration: float = typer.Option(10.0, "--duration", "-d", help="Seconds of audio (over 30 s: windowed generation)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Output file: .wav, .flac, .ogg or .mp3."),
    prompts_file: Optional[Path] = typer.Option(None, "--prompts-file", help="A text file with one prompt per line."),
    top_k: int = typer.Option(250, "--top-k", help="Sample from the k most likely tokens (1 = greedy, 0 = off)."),
    top_p: float = typer.Option(0.0, "--top-p", help="Nucleus sampling probability (0 = off)."),
    temperature: float = typer.Option(1.0, "--temperature", help="Softmax temperature (0 = greedy)."),
    cfg: float = typer.Option(3.0, "--cfg", help="Classifier-free guidance scale (1 = no guidance)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed; the same seed gives the same file."),
    stride: Optional[float] = typer.Option(None, "--stride", help="Seconds added per window past the model's window (default: 18 for 30 s models)."),
    normalize: str = typer.Option("peak", "--normalize", help="peak (-1 dBFS), loudness (-14 LUFS) or none."),
    force: bool = typer.Option(False, "--force", "-f", help="Overwrite existing output files."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
) -> None:
    """Generate music from text descriptions."""
    from .api import MusicGen, check_duration

    prompts = read_prompts(prompts, prompts_file)
    check_duration(duration)
    if normalize not in audio.NORMALIZATIONS:
        raise MusicgenError(f"--normalize must be one of {', '.join(audio.NORMALIZATIONS)}, got '{normalize}'")
    paths = check_outputs(output_paths(prompts, output), force)
    seed = secrets.randbelow(2**31) if seed is None else seed
    opts = sampling_options(top_k, top_p, temperature, cfg, seed)

    with err.status(f"Loading {model} ..."):
        mg = MusicGen.load(model, device=device)
    frames = mg.frames_for(duration)
    layout = "stereo" if mg.channels == 2 else "mono"
    err.print(f"{len(prompts)} × {frames / mg.frame_rate:g} s of {layout} {mg.sample_rate} Hz audio from {model}")
    start = time.perf_counter()
    codes = with_progress(mg, frames, lambda progress: mg.generate_codes(prompts, duration, opts, stride, progress))
    wav = mg.codec.decode(codes).cpu()
    record = {
        "model": model, "model_folder": str(mg.folder), "seed": seed, "top_k": top_k, "top_p": top_p,
        "temperature": temperature, "cfg": cfg, "duration": duration,
        "stride": mg.default_stride if stride is None else stride, "normalize": normalize,
        "sample_rate": mg.sample_rate, "channels": mg.channels, "frames": frames, "batch": prompts,
        "device": str(mg.device), "wall_time_s": round(time.perf_counter() - start, 3), "musicgen_version": __version__,
    }
    for i, (prompt, path) in enumerate(zip(prompts, paths)):
        write_output(path, wav[i], mg.sample_rate, normalize, {"prompt": prompt, "batch_index": i, **record})


def with_progress(mg, frames: int, run):
    """Call run(progress_callback) under a progress bar: frames, seconds of audio, steps/s, time left."""
    columns = [TextColumn("[bold]generating"), BarColumn(), RateColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=err) as bar:
        task = bar.add_task("generate", total=None, frames=frames, frame_rate=mg.frame_rate)
        return run(lambda done, total: bar.update(task, completed=done, total=total))


def write_output(path: Path, wav, sample_rate: int, normalize: str, sidecar: dict) -> None:
    audio.write_audio(path, wav, sample_rate, normalization=normalize)
    audio.write_json(audio.sidecar_path(path), sidecar)
    err.print(f"wrote {path} ({wav.shape[-1] / sample_rate:.1f} s, {wav.shape[0]} ch, {sample_rate} Hz)")


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


def main(argv: Optional[list[str]] = None) -> None:
    """Entry point: one clear line on stderr and a non-zero exit for bad input, never a traceback."""
    command = typer.main.get_command(app)
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
    if code == 130:  # Ctrl-C (typer turns it into exit code 130 itself)
        print("musicgen: interrupted; no output file was left behind", file=sys.stderr)
    sys.exit(code if isinstance(code, int) else 0)
