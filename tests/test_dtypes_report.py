"""The dtypes report (musicgen_cli/evaluate/dtypes.py: docs/speed.md's quality table) runs end to
end on a tiny model and measures what it says: the float32 fast path agrees with the reference to
rounding, the lossy dtypes differ a little, and the build of the kernels that ran is named."""

import json

import pytest

from musicgen_cli.evaluate import dtypes
from musicgen_cli.native import cpu


def test_dtypes_report(mono_ckpt, capsys):
    if cpu.library() is None:
        pytest.skip("the CPU kernels cannot be built here (see the warning)")
    dtypes.main(["--model", str(mono_ckpt), "--seconds", "0.5"])
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["dtypes"]
    assert set(report) == {"float32", "bfloat16", "int8"}
    exact = report["float32"]
    assert exact["relative_error"] < 1e-5 and abs(exact["kl"]) < 1e-8, exact
    assert exact["top1_agreement"] == 1.0 and exact["free_running_greedy_agreement"] == 1.0, exact
    for dtype in ("bfloat16", "int8"):  # a tiny model's narrow products round coarser than a real one's
        lossy = report[dtype]  # (int8 here: KL about 1e-4; the bundled model's: docs/speed.md)
        assert 1e-5 < lossy["relative_error"] < 2e-2 and 1e-7 < lossy["kl"] < 1e-3, (dtype, lossy)
        assert lossy["top1_agreement"] > 0.9 and lossy["reference_entropy"] > 0.1, (dtype, lossy)
    assert report["int8"]["relative_error"] > report["bfloat16"]["relative_error"]  # 7 bits are coarser than 8
    assert {r["kernels"] for r in report.values()} == {cpu.library().isa}
