"""musicgen: generate music from text on your own machine, with MusicGen-compatible checkpoints."""

__version__ = "0.1.0"

from .api import MusicGen  # noqa: E402
from .errors import MusicgenError  # noqa: E402
from .sampling import SamplingOptions  # noqa: E402

__all__ = ["MusicGen", "MusicgenError", "SamplingOptions", "__version__"]
