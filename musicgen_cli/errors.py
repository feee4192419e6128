"""The one exception type the command line turns into a single clear line on stderr."""


class MusicgenError(Exception):
    """A problem with the user's input or environment, worded for the user (one line)."""
