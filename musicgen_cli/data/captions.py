"""Natural-language captions for composed pieces, built from the piece's own parameters.

Templates and synonyms vary the wording; what a caption says is always true of the piece (style,
instruments, tempo word / BPM, key, form), so text can steer style, instruments, tempo and key.
"""

from __future__ import annotations

import numpy as np

from .compose import Piece

# Style -> nouns naming it (the first is canonical) and adjectives that suit it.
STYLE_NOUNS = {
    "lo-fi hip hop": ("lo-fi hip hop beat", "lofi hip hop track", "chill lo-fi beat", "lo-fi hip hop instrumental"),
    "jazz": ("jazz tune", "jazz piece", "small-combo jazz", "swinging jazz number"),
    "rock": ("rock song", "rock track", "guitar rock instrumental", "rock tune"),
    "pop": ("pop song", "pop track", "pop instrumental", "catchy pop tune"),
    "orchestral": ("orchestral piece", "classical piece", "cinematic orchestral cue", "orchestral score"),
    "ambient": ("ambient soundscape", "ambient piece", "ambient track", "atmospheric ambient music"),
    "electronic": ("techno track", "electronic dance track", "electronic track", "club techno tune"),
    "folk": ("folk tune", "acoustic folk song", "folk piece", "folk instrumental"),
}
STYLE_ADJECTIVES = {
    "lo-fi hip hop": ("relaxed", "chill", "dusty", "mellow", "laid-back"),
    "jazz": ("smooth", "swinging", "late-night", "smoky", "easygoing"),
    "rock": ("energetic", "driving", "gritty", "loud", "punchy"),
    "pop": ("upbeat", "bright", "catchy", "feel-good", "cheerful"),
    "orchestral": ("sweeping", "elegant", "lyrical", "dramatic", "graceful"),
    "ambient": ("calm", "dreamy", "peaceful", "floating", "meditative"),
    "electronic": ("pulsing", "hypnotic", "driving", "dark", "energetic"),
    "folk": ("warm", "rustic", "gentle", "homely", "earthy"),
}
TEMPO_WORDS = ((76, "slow"), (108, "medium tempo"), (132, "upbeat"), (1000, "fast"))
FORM_WORDS = {"song": "verse-chorus form", "aaba": "AABA form", "rondo": "a returning theme", "club": "build and drop"}


def tempo_word(bpm: float) -> str:
    """"slow" (< 76 BPM), "medium tempo" (< 108), "upbeat" (< 132) or "fast"."""
    return next(word for limit, word in TEMPO_WORDS if bpm < limit)


def style_of_caption(text: str) -> str | None:
    """The style a caption names (any of its nouns), or None: the inverse map used by tests and tools."""
    low = text.lower()
    for style, nouns in STYLE_NOUNS.items():
        if any(n.lower() in low for n in nouns):
            return style
    return None


def _a(phrase: str) -> str:
    return ("an " if phrase[0].lower() in "aeiou" else "a ") + phrase


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _form(piece: Piece) -> str | None:
    kinds = set(piece.sections)
    if {"verse", "chorus"} <= kinds:
        return FORM_WORDS["song"]
    if piece.sections[:2] == ["A", "A"] or piece.sections[1:3] == ["A", "A"]:
        return FORM_WORDS["aaba"]
    if piece.sections.count("theme") > 1:
        return FORM_WORDS["rondo"]
    if "drop" in kinds:
        return FORM_WORDS["club"]
    return None


def caption(piece: Piece, rng: np.random.Generator) -> str:
    """A varied caption for ``piece``; the same rng state gives the same text."""
    pick = lambda seq: seq[int(rng.integers(len(seq)))]  # noqa: E731
    adj = pick(STYLE_ADJECTIVES[piece.style])
    noun = pick(STYLE_NOUNS[piece.style])
    if adj in noun:
        noun = STYLE_NOUNS[piece.style][0]
    bpm = f"{round(piece.tempo)} BPM" if rng.random() < 0.5 else f"{round(piece.tempo)} bpm"
    key = f"{piece.key} {piece.mode}"
    names = list(piece.instruments)
    if len(names) > 1 and rng.random() < 0.3:
        names = names[: int(rng.integers(1, len(names)))]
    inst = _join(names)
    tempo = tempo_word(piece.tempo)
    form = _form(piece)
    templates = [
        f"{_a(adj)} {noun} with {inst}, {bpm}, in {key}",
        f"{adj.capitalize()} {noun} in {key} at {bpm}: {inst}",
        f"{tempo} {noun} featuring {inst}",
        f"{adj} {noun}, {tempo}, {key}",
        f"{inst} playing {_a(adj)} {noun} in {key}",
        f"{noun} with {inst}",
        f"{_a(tempo)}, {adj} {noun} in {key} with {inst}",
        f"{adj} {noun} at {bpm}",
    ]
    text = pick(templates)
    if form and rng.random() < 0.35:
        text += f", {form}"
    return text[0].upper() + text[1:] if rng.random() < 0.5 else text
