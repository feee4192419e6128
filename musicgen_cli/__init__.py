"""musicgen: generate music from text on your own machine, with MusicGen-compatible checkpoints."""

__version__ = "0.1.0"
__all__ = ["MusicGen", "MusicgenError", "SamplingOptions", "__version__"]


def __getattr__(name: str):
    """The API, imported on first use: `musicgen --help` must not pay for torch."""
    if name == "MusicGen":
        from .api import MusicGen

        return MusicGen
    if name == "MusicgenError":
        from .errors import MusicgenError

        return MusicgenError
    if name == "SamplingOptions":
        from .options import SamplingOptions

        return SamplingOptions
    raise AttributeError(f"module 'musicgen_cli' has no attribute {name!r}")
