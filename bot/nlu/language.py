"""Guess whether a message is English or Spanish from its function words (no model, no I/O)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

_SPANISH = frozenset(
    "que de la el y los las me mi mis quiero estoy es por para con una un muy pero lo se ya nada todo porque como mas "
    "esta estas tengo soy hola gracias ayuda siento vida puedo nadie tambien cuando donde quien yo tu eres hacer solo "
    "ella ellos del al sin hay sus ni le les nos aqui asi hoy bien mal ganas dia noche".split()
)
# "no", "me" and "a" are words in both languages, so they say nothing either way.
_ENGLISH = frozenset(
    "the i and to you is my it of am do not want with for this that what have are be just can how so feel me "
    "im dont cant hello hi thanks help anyone life everyone nobody about like they he she we was get really "
    "would will need know think people day night".split()
)

_SPANISH_ONLY = _SPANISH - _ENGLISH
_ENGLISH_ONLY = _ENGLISH - _SPANISH


def guess_language(tokens: Iterable[str] | Mapping[str, list[int]]) -> str | None:
    """'es', 'en', or None when the evidence is too thin or mixed to say.

    Takes the tokens, or a token -> positions map (then each distinct word counts by its occurrences).
    """
    if isinstance(tokens, Mapping):
        spanish = sum(len(at) for word, at in tokens.items() if word in _SPANISH_ONLY)
        english = sum(len(at) for word, at in tokens.items() if word in _ENGLISH_ONLY)
    else:
        spanish = sum(1 for t in tokens if t in _SPANISH_ONLY)
        english = sum(1 for t in tokens if t in _ENGLISH_ONLY)
    if spanish >= 1 and spanish > english * 1.5:
        return "es"
    if english >= 1 and english > spanish * 1.5:
        return "en"
    return None
