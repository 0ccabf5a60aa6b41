"""Common English and Spanish words (from wordfreq), so a real word is never "corrected" into another.

Without it, "quedarme" (to stay) is one letter from "quemarme" (to burn myself) and would read as
self-harm. Loaded once per process; it is static data, not a cache of messages.
"""

from __future__ import annotations

from functools import lru_cache

from bot.nlu.normalize import basic_word

COMMON_WORDS_PER_LANGUAGE = 40000


@lru_cache(maxsize=1)
def common_words() -> frozenset[str]:
    from wordfreq import top_n_list

    words: set[str] = set()
    for language in ("en", "es"):
        words.update(basic_word(w) for w in top_n_list(language, COMMON_WORDS_PER_LANGUAGE) if w.isalpha())
    return frozenset(words)


@lru_cache(maxsize=None)
def word_frequency(word: str) -> float:
    """How common a word is in English and Spanish text together (0 for unknown words)."""
    from wordfreq import word_frequency as frequency

    return frequency(word, "en") + frequency(word, "es")
