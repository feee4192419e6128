"""Training data our own code writes: a procedural composer and its captions (rendering and training come later).

``compose.compose(seed, seconds, style)`` returns a :class:`compose.Piece` (timed notes on General MIDI
channels plus programs, tempo, key, form), and ``captions.caption(piece, rng)`` describes it in words.
"""
