"""``python -m musicgen_cli.train dataset|codec|codec2|export-codec2|tokens|lm|export``: the stages that produce the bundled model."""

from __future__ import annotations

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)


def _device(name: str) -> str:
    from ..api import pick_device

    return str(pick_device(name))


@app.callback()
def main() -> None:
    """Train the bundled default model, stage by stage."""


@app.command()
def dataset(folder: str = typer.Argument(..., help="where to write manifest.jsonl, mix/ and melody/"),
            count: int = typer.Option(480, help="number of pieces"),
            seconds: float = typer.Option(30.0, help="length of each piece"),
            first_seed: int = typer.Option(0, help="seeds first_seed .. first_seed+count-1; "
                                                   "held-out sets start at 1000000"),
            workers: int = typer.Option(0, help="render processes (0: one per core)")):
    """Compose, caption and render seeded pieces (FluidSynth + a General MIDI soundfont)."""
    from ..data import dataset as ds

    ds.build(folder, count, seconds, first_seed, workers or None,
             progress=lambda i, n: print(f"rendered {i}/{n}", flush=True) if i % 20 == 0 or i == n else None)


@app.command()
def codec(data: str = typer.Argument(..., help="a dataset folder"),
          out: str = typer.Argument(..., help="where checkpoints, log.jsonl and the final codec/ go"),
          steps: int = typer.Option(6000), batch: int = typer.Option(8), seconds: float = typer.Option(1.0),
          lr: float = typer.Option(1e-3), num_filters: int = typer.Option(16),
          codebook_size: int = typer.Option(1024), save_every: int = typer.Option(250),
          threads: int = typer.Option(0, help="torch threads (0: torch's default)"),
          device: str = typer.Option("auto", help="cpu, cuda or auto")):
    """Train (or resume) the EnCodec-architecture codec on a dataset's mixes."""
    from . import codec as stage

    print(stage.train(data, out, steps, batch, seconds, lr, num_filters=num_filters, codebook_size=codebook_size,
                      save_every=save_every, threads=threads or None, device=_device(device)))


@app.command()
def codec2(data: str = typer.Argument(..., help="a dataset folder"),
           out: str = typer.Argument(..., help="the run folder: run.json, checkpoint.pt, log.jsonl"),
           total_steps: int = typer.Option(30000, help="the planned total; fixed by the run's first call"),
           stop_at: int = typer.Option(0, help="stop at this step (0: the planned total)"),
           batch: int = typer.Option(8), seconds: float = typer.Option(1.28), lr: float = typer.Option(6e-4),
           score_weight: float = typer.Option(1.0, help="weight of the piano-roll loss on codebook 0"),
           freeze_codes_at: int = typer.Option(0, help="from this step only the decoder learns, so the codes "
                                                       "stay fixed for an LM (0: never)"),
           save_every: int = typer.Option(200), threads: int = typer.Option(1, help="torch threads (0: default)"),
           device: str = typer.Option("cpu", help="cpu, cuda or auto")):
    """Train (or resume) the second codec (STFT/ConvNeXt/inverse STFT, musicgen_cli.codec_v2)."""
    from . import codec2 as stage

    print(stage.train(data, out, total_steps, stop_at or None, batch, seconds, lr, score_weight=score_weight,
                      save_every=save_every, threads=threads or None, device=_device(device),
                      freeze_codes_at=freeze_codes_at))


@app.command()
def export_codec2(run: str = typer.Argument(..., help="a codec2 run folder"),
                  folder: str = typer.Argument(..., help="where config.json and codec.pt go"),
                  half: bool = typer.Option(True, help="store float16 weights")):
    """Write the second codec's runtime folder from a run's latest checkpoint."""
    from . import codec2 as stage

    print(stage.export(run, folder, half=half))


@app.command()
def tokens(data: str = typer.Argument(..., help="a dataset folder"),
           codec_folder: str = typer.Argument(..., help="the codec stage's codec/ folder"),
           out_file: str = typer.Argument(..., help="the .pt file to write")):
    """Encode a dataset with the trained codec (codes, melody chroma and captions in one file)."""
    from . import lm as stage

    print(stage.tokenize(data, codec_folder, out_file))


@app.command()
def lm(codec_folder: str = typer.Argument(..., help="the codec stage's codec/ folder"),
       out: str = typer.Argument(..., help="the run folder: run.json, checkpoints, log.jsonl, the tokenizer"),
       tokens_files: list[str] = typer.Argument(..., help="from the tokens command (one per dataset folder)"),
       total_steps: int = typer.Option(3000, help="the planned total; fixed by the run's first call"),
       stop_at: int = typer.Option(0, help="stop at this step (0: the planned total)"),
       batch: int = typer.Option(8), lr: float = typer.Option(1e-3),
       vocab_size: int = typer.Option(400, help="sentencepiece vocabulary trained on the captions"),
       layers: int = typer.Option(4), dim: int = typer.Option(256),
       first_weight: float = typer.Option(1.0, help="weight of codebook 0's cells in the loss"),
       heldout: str = typer.Option("", help="a tokens file of held-out pieces: its loss is logged at each save"),
       save_every: int = typer.Option(100), threads: int = typer.Option(0, help="torch threads (0: torch's default)"),
       device: str = typer.Option("auto", help="cpu, cuda or auto")):
    """Train (or resume) the T5 text encoder and the melody-capable LM together."""
    import transformers

    from . import lm as stage

    transformers.logging.set_verbosity_error()
    print(stage.train(tokens_files, codec_folder, out, total_steps, stop_at or None, batch, lr,
                      vocab_size=vocab_size, layers=layers, dim=dim, first_weight=first_weight,
                      heldout=heldout or None, save_every=save_every, threads=threads or None,
                      device=_device(device)))


@app.command()
def export(lm_dir: str = typer.Argument(..., help="the lm stage's folder"),
           codec_folder: str = typer.Argument(..., help="the codec stage's codec/ folder"),
           folder: str = typer.Argument(..., help="the Hugging Face folder to write")):
    """Write the trained model as a Hugging Face MusicGen folder (--model FOLDER loads it)."""
    from . import export as stage

    print(stage.export(lm_dir, codec_folder, folder))


if __name__ == "__main__":
    app()
