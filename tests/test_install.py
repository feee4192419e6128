"""Installing us leaves other packages alone: nothing of ours is importable as `kernels` (Hugging
Face's package of that name, which transformers imports), from anywhere, the repo root included."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


def where(module: str, cwd: Path) -> str:
    done = subprocess.run([sys.executable, "-c", f"import {module}; print({module}.__file__)"], cwd=cwd,
                          capture_output=True, text=True)
    return done.stdout.strip() or done.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("cwd", [ROOT, ROOT / "kernels", ROOT / "tests"], ids=["root", "kernels", "tests"])
def test_import_kernels_gives_hugging_faces_package_from_anywhere(cwd):
    found = where("kernels", cwd)
    assert "site-packages" in found and not found.startswith(str(ROOT / "kernels")), found


def test_kernels_folder_holds_native_sources_only():
    assert not list((ROOT / "kernels").glob("*.py")), "Python in kernels/ would make it importable as `kernels`"
    assert {p.suffix for p in (ROOT / "kernels").iterdir()} <= {".cpp", ".h", ".cu"}


def test_transformers_musicgen_imports_next_to_us():
    done = subprocess.run([sys.executable, "-c", "import musicgen_cli.cli, musicgen_cli.native.backends; "
                           "import transformers.models.musicgen.modeling_musicgen"], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_distribution_name_is_ours_and_the_command_stays_musicgen():
    text = (ROOT / "pyproject.toml").read_text()
    assert 'name = "musicgen-cli"' in text and 'musicgen = "musicgen_cli.cli:main"' in text
