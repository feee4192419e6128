"""Nothing lost, nothing crashes (issue 16, items 2, 4, 5, 6): races on the output name, both files
or neither, SIGTERM, stale temp files, Ctrl-C between files. Real processes where signals or races
are involved."""

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import soundfile as sf
from cli_helpers import run_and_interrupt, run_main

from musicgen_cli import files
from musicgen_cli.api import MusicGen


def musicgen(*args):
    return [sys.executable, "-m", "musicgen_cli", *map(str, args)]


def test_output_that_appears_meanwhile_is_not_replaced(mono_ckpt, tmp_path, capsys, monkeypatch):
    """Item 2: the check before generating passes; then another program writes the name."""
    out = tmp_path / "s.wav"
    decode = MusicGen.decode

    def decode_then_someone_writes(self, codes):
        out.write_bytes(b"theirs")
        return decode(self, codes)

    monkeypatch.setattr(MusicGen, "decode", decode_then_someone_writes)
    code, lines = run_main(["generate", "x", "-m", mono_ckpt, "-d", "0.5", "-o", out], capsys)
    assert code in (0, None), lines
    assert out.read_bytes() == b"theirs"
    assert not (tmp_path / "s.json").exists()
    assert sf.info(tmp_path / "s-2.wav").frames == 25 * 640
    assert json.loads((tmp_path / "s-2.json").read_text())["prompt"] == "x"
    said = [line for line in lines if "appeared" in line]
    assert len(said) == 1 and "s.wav appeared" in said[0] and "s-2.wav" in said[0], lines
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_two_runs_racing_for_one_name_both_keep_their_audio(mono_ckpt, tmp_path):
    """Item 2, as the issue reproduces it: two processes, the same -o, started together."""
    out = tmp_path / "s.wav"
    procs = [subprocess.Popen(musicgen("generate", p, "-m", mono_ckpt, "-d", "0.5", "-o", out, "--seed", "1"),
                              stderr=subprocess.PIPE, text=True) for p in ("jazz", "rock")]
    errs = [p.communicate(timeout=300)[1] for p in procs]
    codes = [p.returncode for p in procs]
    refused = [e for c, e in zip(codes, errs) if c == 1 and "exists; pass --force" in e]
    assert all(c == 0 for c in codes) or len(refused) == 1, errs  # the second may also see the file up front
    prompts = {json.loads(j.read_text())["prompt"] for j in tmp_path.glob("*.json")}
    wavs = sorted(p.name for p in tmp_path.glob("*.wav"))
    if not refused:
        assert wavs == ["s-2.wav", "s.wav"] and prompts == {"jazz", "rock"}, (wavs, errs)
        assert sum("appeared while this run worked" in e for e in errs) == 1, errs


def test_full_disk_at_the_sidecar_leaves_neither_file(mono_ckpt, tmp_path, capsys, monkeypatch):
    """Item 5 (and 12: say which file and why)."""
    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files.json, "dump", no_space)
    out = tmp_path / "a.wav"
    code, lines = run_main(["generate", "x", "-m", mono_ckpt, "-d", "0.5", "-o", out], capsys)
    assert code == 1 and lines[-1].startswith("musicgen: error: could not write"), lines
    assert "a.json" in lines[-1] and "is full" in lines[-1], lines
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    code, lines = run_main(["generate", "x", "-m", mono_ckpt, "-d", "0.5", "-o", out], capsys)  # a rerun works
    assert code in (0, None) and out.exists() and files.sidecar_path(out).exists(), lines


def test_file_size_limit_is_said_in_words(mono_ckpt, tmp_path):
    """Item 12: libsndfile's "System error." becomes the reason, in a real process under a file-size limit."""
    import resource

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))

    proc = subprocess.run(musicgen("generate", "x", "-m", mono_ckpt, "-d", "2", "-o", tmp_path / "a.wav"),
                          capture_output=True, text=True, timeout=300, preexec_fn=limit)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "could not write" in lines[-1] and "larger than this system allows" in lines[-1], lines
    assert list(tmp_path.iterdir()) == []


def test_sigterm_is_handled_like_ctrl_c(mono_ckpt, tmp_path):
    """Item 4: SIGTERM during a run: exit 143, one line, no file and no temp file left."""
    code, stderr = run_and_interrupt(["generate", "x", "-m", mono_ckpt, "-d", "600", "-o", tmp_path / "long.flac"],
                                     signal.SIGTERM)
    assert code == 143, stderr
    assert "Traceback" not in stderr and "musicgen: terminated; no output file was left behind" in stderr, stderr
    assert list(tmp_path.iterdir()) == []


def start_and_catch_the_write(args, folder, stderr):
    """Start `musicgen ARGS` writing into `folder`; return (process, its hidden temp output) once
    that file has been seen growing: the signal the caller sends then lands in the write itself."""
    proc = subprocess.Popen(musicgen(*args), stdout=subprocess.DEVNULL, stderr=stderr)
    sizes, deadline = {}, time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline:
        for entry in os.scandir(folder):
            if entry.name.startswith(files.TEMP_PREFIX) and entry.name.endswith(".mp3"):
                try:
                    size = entry.stat().st_size
                except OSError:  # renamed meanwhile
                    continue
                if size and sizes.setdefault(entry.path, size) < size:
                    return proc, Path(entry.path)
        time.sleep(0.002)
    proc.kill()
    raise AssertionError(f"never saw the output being written (exit code {proc.wait()})")


def test_sigterm_during_the_write_leaves_no_temp_file(mono_ckpt, tmp_path):
    """Item 4: SIGTERM while the encoder is writing the hidden temp file (a minute of MP3 takes about
    a second and a half to encode here): exit 143, one line, nothing left in the folder."""
    out = tmp_path / "out"
    out.mkdir()
    with open(tmp_path / "stderr", "w") as stderr:
        proc, temp = start_and_catch_the_write(["generate", "x", "-m", mono_ckpt, "-d", "60", "-o", out / "long.mp3"],
                                               out, stderr)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=120)
    said = (tmp_path / "stderr").read_text()
    assert code == 143 and "Traceback" not in said, said
    assert said.strip().splitlines()[-1] == "musicgen: terminated; no output file was left behind", said
    assert list(out.iterdir()) == [], said


def test_sigkill_during_the_write_leaves_a_temp_file_the_next_run_sweeps(mono_ckpt, tmp_path, capsys):
    """Item 4: SIGKILL cannot be handled, so the hidden temp file stays (and no output name is
    taken); once it is older than an hour the next run writing into that folder removes it."""
    out = tmp_path / "out"
    out.mkdir()
    proc, temp = start_and_catch_the_write(["generate", "x", "-m", mono_ckpt, "-d", "60", "-o", out / "long.mp3"],
                                           out, subprocess.DEVNULL)
    proc.kill()
    assert proc.wait(timeout=60) == -signal.SIGKILL
    left = sorted(out.iterdir())  # the audio's temp file, and the sidecar's (written first), both hidden
    assert temp in left and temp.stat().st_size > 0 and all(p.name.startswith(files.TEMP_PREFIX) for p in left)
    code, lines = run_main(["generate", "x", "-m", mono_ckpt, "-d", "0.5", "-o", out / "b.wav"], capsys)
    assert code in (0, None) and all(p.exists() for p in left), lines  # a fresh one may be a run in progress: kept
    for p in left:
        os.utime(p, (time.time() - files.STALE_SECONDS - 60,) * 2)
    code, lines = run_main(["generate", "x", "-m", mono_ckpt, "-d", "0.5", "-o", out / "c.wav"], capsys)
    assert code in (0, None), lines
    assert sorted(p.name for p in out.iterdir()) == ["b.json", "b.wav", "c.json", "c.wav"]


def test_stale_temp_files_of_ours_are_swept(mono_ckpt, tmp_path, capsys):
    """Item 4: what SIGKILL left behind goes on the next run; fresh ones (a run in progress) and
    files that are not ours stay."""
    old = [tmp_path / ".musicgen-tmp-long.k3j4h5g6.flac", tmp_path / ".long.ab12cd34.flac"]
    young = tmp_path / ".musicgen-tmp-other.zz99yy88.wav"
    mine = [tmp_path / ".long.flac", tmp_path / "notes.ab12cd34.flac", tmp_path / ".cache.abcdefgh.json"]
    for p in [*old, young, *mine]:
        p.write_bytes(b"x" * 100)
    for p in [*old, *mine]:
        os.utime(p, (time.time() - 2 * files.STALE_SECONDS,) * 2)
    code, lines = run_main(["generate", "x", "-m", mono_ckpt, "-d", "0.5", "-o", tmp_path / "a.wav"], capsys)
    assert code in (0, None), lines
    assert not any(p.exists() for p in old)
    assert young.exists() and all(p.exists() for p in mine)


def test_ctrl_c_between_files_says_what_was_written(mono_ckpt, tmp_path, capsys, monkeypatch):
    """Item 6: interrupted after the first of three files: the line names it (and it is whole)."""
    from musicgen_cli import audio

    write = audio.write_audio
    calls = []

    def write_then_ctrl_c(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return write(*args, **kwargs)

    monkeypatch.setattr(audio, "write_audio", write_then_ctrl_c)
    code, lines = run_main(["generate", "a", "b", "c", "-m", mono_ckpt, "-d", "0.5", "-o", tmp_path / "s.wav"], capsys)
    assert code == 130
    assert "no output file was left behind" not in lines[-1]
    assert "after writing 1 file" in lines[-1] and "s-1.wav" in lines[-1], lines
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s-1.json", "s-1.wav"]


def test_large_batches_are_split_and_each_written_when_done(mono_ckpt, tmp_path, capsys, monkeypatch):
    """Item 7: 3 prompts in batches of 1 (a tiny memory budget): said up front; the first file is on
    disk before the second batch starts (here it is interrupted), and it is the file a run of that
    prompt alone gives."""
    from musicgen_cli import api

    code, _ = run_main(["generate", "a", "-m", mono_ckpt, "-d", "0.5", "--seed", "5", "-o", tmp_path / "alone.wav"], capsys)
    assert code in (0, None)
    monkeypatch.setattr(api, "BATCH_BUDGET", 1)
    generate, calls = MusicGen.generate_codes, []

    def second_batch_interrupted(self, prompts, *args, **kwargs):
        calls.append(prompts)
        if len(calls) == 2:
            assert (tmp_path / "s-1.wav").exists() and (tmp_path / "s-1.json").exists()
            raise KeyboardInterrupt
        return generate(self, prompts, *args, **kwargs)

    monkeypatch.setattr(MusicGen, "generate_codes", second_batch_interrupted)
    code, lines = run_main(["generate", "a", "b", "c", "-m", mono_ckpt, "-d", "0.5", "--seed", "5",
                            "-o", tmp_path / "s.wav"], capsys)
    assert code == 130 and calls == [["a"], ["b"]], lines
    assert "in 3 batches of at most 1" in lines[0], lines
    assert "after writing 1 file" in lines[-1] and "s-1.wav" in lines[-1], lines
    assert sf.read(tmp_path / "s-1.wav")[0].tolist() == sf.read(tmp_path / "alone.wav")[0].tolist()
    assert not (tmp_path / "s-2.wav").exists()


def test_without_hard_links_a_taken_sidecar_name_still_loses_nothing(tmp_path, monkeypatch):
    """Item 2 on file systems without hard links: names are claimed exclusively first, so a clash
    on the second name moves the whole set to the next free names with both files intact."""
    from musicgen_cli.audio import write_audio

    def no_links(*args):
        raise OSError(errno.EPERM, "links not supported")

    monkeypatch.setattr(files.os, "link", no_links)
    (tmp_path / "s.json").write_text("theirs")
    written = write_audio(tmp_path / "s.wav", [[0.1, -0.1] * 100], 8000, sidecar={"prompt": "mine"}, force=False)
    assert written == tmp_path / "s-2.wav"
    assert (tmp_path / "s.json").read_text() == "theirs" and not (tmp_path / "s.wav").exists()
    assert json.loads((tmp_path / "s-2.json").read_text()) == {"prompt": "mine"} and sf.info(written).frames == 200
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s-2.json", "s-2.wav", "s.json"]
