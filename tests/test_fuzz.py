"""Issue 16's fuzz: random bytes and mutated headers into the audio reader and the checkpoint
loader. Bounded (fixed seeds, a few hundred cases, well under a minute); every case must end in
audio or one MusicgenError: no other exception, no crash (the reader runs in a child process, so a
crash in libsndfile fails the test instead of killing pytest)."""

import subprocess
import sys
import textwrap

from musicgen_cli import checkpoints
from musicgen_cli.errors import MusicgenError

AUDIO_FUZZ = textwrap.dedent("""
    import random, sys, tempfile
    from pathlib import Path
    import numpy as np, soundfile as sf
    from musicgen_cli.audio import read_audio
    from musicgen_cli.errors import MusicgenError

    rng, folder = random.Random(16), Path(tempfile.mkdtemp())
    tone = (0.3 * np.sin(np.arange(8000) / 5.0)).astype(np.float32)
    seeds = []
    for ext, rate, subtype in ((".wav", 8000, "PCM_16"), (".flac", 8000, "PCM_16"), (".ogg", 8000, "VORBIS"),
                               (".mp3", 8000, "MPEG_LAYER_III"), (".wav", 8000, "FLOAT")):
        sf.write(folder / f"seed{ext}", tone, rate, subtype=subtype)
        seeds.append((ext, (folder / f"seed{ext}").read_bytes()))
    outcomes = {"audio": 0, "refused": 0}
    for case in range(int(sys.argv[1])):
        ext, data = rng.choice(seeds)
        data = bytearray(data)
        kind = case % 4
        if kind == 0:  # random bytes
            data = bytearray(rng.randbytes(rng.randrange(1, 4096)))
        elif kind == 1:  # header bytes flipped
            for _ in range(rng.randrange(1, 8)):
                data[rng.randrange(min(64, len(data)))] = rng.randrange(256)
        elif kind == 2:  # truncated
            data = data[: rng.randrange(1, len(data))]
        else:  # a header field set to an extreme value
            at = rng.randrange(4, min(60, len(data) - 4))
            data[at:at + 4] = rng.choice([b"\\xff\\xff\\xff\\xff", b"\\x00\\x00\\x00\\x00", b"\\xff\\xff\\xff\\x7f"])
        path = folder / f"case{case}{ext}"
        path.write_bytes(bytes(data))
        try:
            read_audio(path, max_seconds=3600)
            outcomes["audio"] += 1
        except MusicgenError:
            outcomes["refused"] += 1
        path.unlink()
    print(outcomes)
""")


def test_audio_reader_fuzz():
    done = subprocess.run([sys.executable, "-c", AUDIO_FUZZ, "400"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "refused" in done.stdout


def test_checkpoint_loader_fuzz(mono_ckpt, tmp_path):
    """Mutated safetensors headers and truncated weights of a tiny checkpoint."""
    import random
    import shutil

    rng = random.Random(16)
    folder = tmp_path / "ckpt"
    shutil.copytree(mono_ckpt, folder)
    weights = (mono_ckpt / "model.safetensors").read_bytes()
    header = int.from_bytes(weights[:8], "little") + 8
    for case in range(40):
        data = bytearray(weights)
        if case % 3 == 0:
            data = data[: rng.randrange(1, len(data))]
        elif case % 3 == 1:
            for _ in range(rng.randrange(1, 6)):
                data[rng.randrange(header)] = rng.randrange(32, 127)
        else:
            data[:8] = rng.randrange(1 << 64).to_bytes(8, "little")
        (folder / "model.safetensors").write_bytes(bytes(data))
        try:
            checkpoints.load(str(folder))
        except MusicgenError:
            pass
