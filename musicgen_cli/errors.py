"""The one exception type the command line turns into a single clear line on stderr."""


class MusicgenError(Exception):
    """A problem with the user's input or environment, worded for the user (one line)."""


class ModelProducedNaN(MusicgenError):
    """The network's logits were NaN or infinite at a decode step (damaged weights, overflow)."""

    def __init__(self, step: int):
        super().__init__(f"the model produced NaN at step {step} (its logits are not finite; "
                         "are the checkpoint's weights damaged?)")
        self.step = step
