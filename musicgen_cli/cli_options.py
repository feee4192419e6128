"""The options the commands share: one definition each, used in the commands' signatures (cli.py)."""

import typer

# Options every command takes (one definition each, shared by the commands' signatures).
DURATION_HELP = "Seconds of audio; past the model's window (30 s for the published models, 10 s for the bundled one) in overlapping windows; inf with -o - or --play: until Ctrl-C."
OUTPUT = typer.Option(None, "--output", "-o", help="Output file: .wav, .flac, .ogg or .mp3; - streams WAV to standard output as it is made (e.g. | ffplay -nodisp -).")
PLAY = typer.Option(False, "--play", help="Play through the default audio output as it is made (the optional extra: pip install 'musicgen-cli[play]'); with -o song.wav also writes the file.")
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
BPM = typer.Option(None, "--bpm", help="Tempo in beats a minute: with --bars, the length in whole bars.")
BARS = typer.Option(None, "--bars", help="Length in bars of --meter at --bpm (instead of --duration).")
METER = typer.Option("4/4", "--meter", help="Time signature the bars are counted in: 4/4, 3/4, 6/8, ...")
LOOP = typer.Option(False, "--loop", help="Make a file that loops without a seam (its end leads into its start); WAV gets a loop chunk.")
OFFLINE = typer.Option(False, "--offline", help="Never use the network (as HF_HUB_OFFLINE=1): only cached or bundled models.")


def model_option(melody: bool = False):
    default, examples = ("melody", "melody, melody-large, stereo-melody") if melody else ("small", "small, medium, large, stereo-small")
    return typer.Option(None, "--model", "-m", show_default=False, help=(
        f"A published model ({examples}; `musicgen models` lists them), a hub id, a checkpoint folder, or "
        f"bundled (our small model, in the package). Default: {default}, downloaded on first use; offline and "
        "not cached: bundled."))


def normalize_option(default: str):
    return typer.Option(default, "--normalize", help="peak (-1 dBFS), loudness (-14 LUFS) or none.")
