"""The package build: everything is in pyproject.toml except this one step. It ships the CPU
kernels prebuilt (musicgen_cli/native/build.py), so a user's first run compiles nothing, and
copies the kernels' sources into the wheel (the CUDA sampler is compiled from them at run time).
A machine with no C++ compiler still installs: the library is then built at run time, or the
plain PyTorch path runs."""

import importlib.util
import platform
import sys
from pathlib import Path

from setuptools import Distribution, setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).parent
spec = importlib.util.spec_from_file_location("native_build", ROOT / "musicgen_cli" / "native" / "build.py")
native_build = importlib.util.module_from_spec(spec)
spec.loader.exec_module(native_build)


class BuildWithKernels(build_py):
    def run(self):
        super().run()
        editable = getattr(self, "editable_mode", False)
        package = ROOT / "musicgen_cli" / "native" if editable else Path(self.build_lib) / "musicgen_cli" / "native"
        if not editable:
            native_build.copy_sources(package / "src")
        if platform.machine().lower() not in ("x86_64", "amd64"):
            print("musicgen: the CPU kernels need x86-64; the PyTorch path will run", file=sys.stderr)
            return
        for isa in native_build.ISAS:  # each build; the run time loads the best one the CPU runs
            try:
                native_build.compile_library(package / native_build.prebuilt(isa).name,
                                             sources=ROOT / "kernels", isa=isa)
            except (RuntimeError, OSError) as e:  # the run time builds it, or uses PyTorch
                print(f"musicgen: CPU kernels ({isa}) not prebuilt ({e})", file=sys.stderr)


class BinaryDistribution(Distribution):
    def has_ext_modules(self):  # the wheel holds a compiled library: tag it for this platform
        return True


setup(cmdclass={"build_py": BuildWithKernels}, distclass=BinaryDistribution)
