"""Understand one message: normalize it, assess risk (always, first), then match an intent."""

from __future__ import annotations

import re
from collections.abc import Iterable

from bot.content.loader import Content
from bot.nlu.language import guess_language
from bot.nlu.matcher import IntentMatcher
from bot.nlu.normalize import Lexicon, Normalizer, basic_tokens, basic_word
from bot.nlu.patterns import PatternCompiler, positions
from bot.nlu.risk import RiskDetector
from bot.nlu.wordlist import common_words, word_frequency
from bot.nlu.types import Understanding

_STEM = re.compile(r"([^\s()\[\]|*]+)\*")
_SYNTAX = re.compile(r"[()\[\]|]|\.\.\.?|@\w+|\S+\*")


def _pattern_words(patterns: Iterable[str]) -> set[str]:
    words: set[str] = set()
    for pattern in patterns:
        for token in basic_tokens(_SYNTAX.sub(" ", pattern)):
            words.add(token)
    return words


def _pattern_stems(patterns: Iterable[str]) -> set[str]:
    return {basic_word(m.casefold()) for pattern in patterns for m in _STEM.findall(pattern) if len(m) >= 3}


class Understander:
    """Built once per content load; `understand` is pure and does no I/O."""

    def __init__(self, content: Content) -> None:
        self.content = content
        escalation = content.escalation
        lexicon = Lexicon.build((form, entry.means) for entry in content.lexicon.entries for form in entry.forms)
        vocabulary: set[str] = set()
        for group in (escalation.signals, escalation.modifiers, escalation.masks):
            for item in group:
                vocabulary |= _pattern_words(item.patterns)
        for entries in escalation.terms.values():
            vocabulary |= _pattern_words(str(e).rstrip("*") for e in entries)
        vocabulary |= _pattern_words(escalation.subjects.self + escalation.subjects.other)
        known: set[str] = set()
        for located in content.intents:
            for words in located.intent.keywords.values():
                vocabulary |= _pattern_words(words)
            for examples in located.intent.examples.values():
                for example in examples:
                    known.update(basic_tokens(example))
        for entry in content.lexicon.entries:
            vocabulary |= set(basic_tokens(entry.means))
        stems: set[str] = set()
        for group in (escalation.signals, escalation.modifiers, escalation.masks):
            for item in group:
                stems |= _pattern_stems(item.patterns)
        for located in content.intents:
            for words in located.intent.keywords.values():
                stems |= _pattern_stems(words)
        self.normalizer = Normalizer(lexicon, vocabulary, known | common_words(), stems=stems)
        # Vocabulary words pass through the lexicon too, so "i'm" in a pattern means what "im" in a message means.
        compiler = PatternCompiler(escalation.terms, self._vocabulary_tokens, word_frequency)
        self.risk = RiskDetector(escalation, compiler)
        self.matcher = IntentMatcher([li.intent for li in content.intents], self.normalizer.tokens, compiler)
        self._languages = tuple(content.languages)

    def _vocabulary_tokens(self, text: str) -> list[str]:
        return self.normalizer._expand(basic_tokens(text))  # noqa: SLF001 - no typo correction on vocabulary

    def tokens(self, text: str) -> list[str]:
        return self.normalizer.tokens(text)

    def understand(self, text: str) -> Understanding:
        tokens = self.normalizer.tokens(text)
        where = positions(tokens)
        risk = self.risk.assess(tokens, where)
        intent = self.matcher.match(tokens, where)
        language = guess_language(where)
        if language not in self._languages:
            language = None
        return Understanding(risk=risk, intent=intent, language=language, normalized=" ".join(tokens))
