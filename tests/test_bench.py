"""`musicgen bench` through a real process, on the tiny decoder (`--size tiny`): it runs both sides
(transformers' generate on the installed transformers, ours on the CPU kernels) and the table it
prints holds together. The published sizes take minutes; their figures are in docs/speed.md."""

import re
import subprocess
import sys

from musicgen_cli.native import cpu

ROW = re.compile(r"^  (transformers generate, float32|musicgen --backend (\S+) --dtype (\S+)(?: \((\w+)\))?)\s+"
                 r"([\d.]+)\s+([\d.]+)\s+[\d.]+ GB\s+[\d.]+ GB\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+([\d.]+)x\s+(-|\d+ ms)$")


def test_bench_runs_both_sides_and_its_ratios_hold(tmp_path):
    args = ["bench", "--size", "tiny", "--steps", "12", "--reference-steps", "8", "--repeats", "1", "--dtype", "int8"]
    # not from the checkout: its kernels/ folder would shadow the package of that name transformers imports
    run = subprocess.run([sys.executable, "-m", "musicgen_cli", *args], cwd=tmp_path, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "musicgen-tiny architecture" in run.stdout and "12 steps x 1 runs" in run.stdout
    rows = [m for m in map(ROW.match, run.stdout.splitlines()) if m]
    assert [m[1].split(" --")[0] for m in rows] == ["transformers generate, float32", "musicgen"], run.stdout
    reference, ours = rows
    lib = cpu.library()
    assert ours[2] == ("cpu" if lib is not None else "torch") and ours[3] == "int8"  # the fast path, where it runs
    if lib is not None:
        assert ours[4] == lib.isa  # the build this CPU runs
    for row in rows:  # x real time is 20 ms over the step time (each printed rounded)
        ms, real_time = float(row[5]), float(row[6])
        assert abs(real_time * ms - 20) <= real_time * 0.05 + 0.01
    ratio = float(reference[5]) / float(ours[5])  # the speed-up: transformers' step time over ours
    assert abs(float(ours[7]) - ratio) <= ratio * (0.05 / float(ours[5]) + 0.05 / float(reference[5])) + 0.01
    assert float(reference[7]) == 1.0
    assert reference[8] == "-" and int(ours[8].split()[0]) > 0  # time to first audio: ours only
