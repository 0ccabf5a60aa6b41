"""Compile the phrase-pattern syntax of escalation.yaml and find its matches in a token list.

Syntax (documented for maintainers at the top of escalation.yaml): words, `word*` prefixes,
`@term` classes, `(a|b c|)` alternatives, `[optional words]`, `..` (up to 3 words) and `...`
(up to 6 words). Gaps never cross a sentence boundary.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from bot.nlu.normalize import BOUNDARY, basic_word

MASKED = "\x00"
_LEADING_DIGITS = re.compile(r"^[0-9]{1,9}")
_LEXEME = re.compile(r"\(|\)|\[|\]|\||\.\.\.|\.\.|[^\s()\[\]|]+")


class PatternError(ValueError):
    pass


@dataclass(frozen=True)
class Words:
    words: frozenset[str]
    prefixes: tuple[str, ...] = ()
    at_least: int | None = None  # `#N`: any number token of at least N ("20", "500mg")

    def accepts(self, token: str) -> bool:
        if token in self.words or (bool(self.prefixes) and token.startswith(self.prefixes)):
            return True
        if self.at_least is not None:
            digits = _LEADING_DIGITS.match(token)
            return bool(digits) and int(digits.group()) >= self.at_least
        return False


@dataclass(frozen=True)
class Gap:
    most: int


@dataclass(frozen=True)
class Choice:
    options: tuple[tuple[Element, ...], ...]


Element = Words | Gap | Choice


@dataclass(frozen=True)
class CompiledPattern:
    owner: str  # the id of the signal/modifier/mask this pattern belongs to
    source: str
    elements: tuple[Element, ...]
    anchor: int  # index of the first required Words element
    before_min: int
    before_max: int
    anchor_words: frozenset[str] = field(default=frozenset())
    anchor_prefixes: tuple[str, ...] = ()
    required: tuple[frozenset[str], ...] = ()  # word sets one of which must be in the message (cheap pre-check)


def _span(element: Element) -> tuple[int, int]:
    if isinstance(element, Words):
        return 1, 1
    if isinstance(element, Gap):
        return 0, element.most
    spans = [_seq_span(option) for option in element.options]
    return min(s[0] for s in spans), max(s[1] for s in spans)


def _seq_span(elements: tuple[Element, ...]) -> tuple[int, int]:
    low = high = 0
    for element in elements:
        a, b = _span(element)
        low += a
        high += b
    return low, high


class PatternCompiler:
    """Turns pattern strings into elements, reading `@term` classes and normalizing each word."""

    def __init__(
        self,
        terms: Mapping[str, list[str]],
        word_tokens: Callable[[str], list[str]],
        word_cost: Callable[[str], float] | None = None,
    ) -> None:
        self._terms = terms
        self._word_tokens = word_tokens
        # How often a word turns up in ordinary text: the rarest required word is the best index key.
        self._word_cost = word_cost or (lambda word: 0.0)
        self._term_cache: dict[str, Element] = {}

    def compile(self, owner: str, source: str) -> CompiledPattern:
        lexemes = _LEXEME.findall(source)
        elements, rest = self._sequence(lexemes, 0, source, closing=None)
        if rest != len(lexemes):
            raise PatternError(f"unbalanced brackets in '{source}'")
        elements = tuple(elements)
        anchors = [(index, first) for index, element in enumerate(elements) if (first := _first_words(element)) is not None]
        if not anchors:
            raise PatternError(f"'{source}' needs a word outside optional groups (e.g. 'want to die')")
        index, first = min(anchors, key=lambda item: (self._cost(item[1]), item[0]))
        before = _seq_span(elements[:index])
        required = tuple(words.words for _, words in anchors if words.words and not words.prefixes)
        return CompiledPattern(owner, source, elements, index, before[0], before[1], first.words, first.prefixes, required)

    def _cost(self, words: Words) -> float:
        return sum(self._word_cost(word) for word in words.words) + 0.001 * len(words.prefixes)

    def _sequence(self, lexemes: list[str], i: int, source: str, closing: str | None) -> tuple[list[Element], int]:
        out: list[Element] = []
        while i < len(lexemes):
            lex = lexemes[i]
            if lex in (")", "]", "|"):
                if closing is None:
                    raise PatternError(f"unexpected '{lex}' in '{source}'")
                return out, i
            if lex == "(":
                options: list[tuple[Element, ...]] = []
                i += 1
                while True:
                    option, i = self._sequence(lexemes, i, source, closing=")")
                    options.append(tuple(option))
                    if i >= len(lexemes):
                        raise PatternError(f"missing ')' in '{source}'")
                    if lexemes[i] == ")":
                        break
                    i += 1  # skip '|'
                out.append(_choice(options))
                i += 1
            elif lex == "[":
                option, i = self._sequence(lexemes, i + 1, source, closing="]")
                if i >= len(lexemes) or lexemes[i] != "]":
                    raise PatternError(f"missing ']' in '{source}'")
                out.append(Choice((tuple(option), ())))
                i += 1
            elif lex == "..":
                out.append(Gap(3))
                i += 1
            elif lex == "...":
                out.append(Gap(6))
                i += 1
            elif re.fullmatch(r"#[0-9]+", lex):
                out.append(Words(frozenset(), (), int(lex[1:])))
                i += 1
            elif lex.startswith("@"):
                out.append(self._term(lex[1:], source))
                i += 1
            elif lex.endswith("*") and len(lex) > 1:
                stem = basic_word(lex[:-1].casefold())
                if len(stem) < 3 or not stem.isalnum():
                    raise PatternError(f"prefix '{lex}' needs at least 3 letters in '{source}'")
                out.append(Words(frozenset(), (stem,)))
                i += 1
            else:
                out.extend(Words(frozenset({w})) for w in self._word_tokens(lex))
                i += 1
        if closing is not None:
            raise PatternError(f"missing '{closing}' in '{source}'")
        return out, i

    def _term(self, name: str, source: str) -> Element:
        if name not in self._terms:
            raise PatternError(f"unknown term '@{name}' in '{source}'")
        if name not in self._term_cache:
            options = []
            for entry in self._terms[name]:
                entry = str(entry)
                if entry.endswith("*"):
                    options.append((Words(frozenset(), (basic_word(entry[:-1].casefold()),)),))
                else:
                    options.append(tuple(Words(frozenset({t})) for t in self._word_tokens(entry)))
            self._term_cache[name] = _choice(options)
        return self._term_cache[name]


def _choice(options: list[tuple[Element, ...]]) -> Element:
    """Alternatives of single words collapse into one Words element (fast, and usable as an anchor)."""
    if options and all(len(o) == 1 and isinstance(o[0], Words) for o in options):
        words: set[str] = set()
        prefixes: list[str] = []
        for (element,) in options:  # type: ignore[misc]
            assert isinstance(element, Words)
            words |= element.words
            prefixes.extend(element.prefixes)
        return Words(frozenset(words), tuple(prefixes))
    return Choice(tuple(options))


def _first_words(element: Element) -> Words | None:
    """The words one of which must stand where this element starts, or None if it may be skipped."""
    if isinstance(element, Words):
        return element if (element.words or element.prefixes) else None
    if isinstance(element, Gap):
        return None
    words: set[str] = set()
    prefixes: list[str] = []
    for option in element.options:
        first = _first_words(option[0]) if option else None
        if first is None:
            return None
        words |= first.words
        prefixes.extend(first.prefixes)
    return Words(frozenset(words), tuple(prefixes))


def _match_seq(elements: tuple[Element, ...], e: int, tokens: list[str], pos: int) -> Iterator[int]:
    if e == len(elements):
        yield pos
        return
    element = elements[e]
    if isinstance(element, Words):
        if pos < len(tokens) and element.accepts(tokens[pos]):
            yield from _match_seq(elements, e + 1, tokens, pos + 1)
    elif isinstance(element, Gap):
        skip = 0
        while True:
            yield from _match_seq(elements, e + 1, tokens, pos + skip)
            if skip >= element.most or pos + skip >= len(tokens) or tokens[pos + skip] == BOUNDARY:
                break
            skip += 1
    else:
        for option in element.options:
            for end in _match_seq(option, 0, tokens, pos):
                yield from _match_seq(elements, e + 1, tokens, end)


@dataclass(frozen=True)
class Match:
    owner: str
    start: int
    end: int


class PatternSet:
    """Patterns indexed by their anchor word, so a message only tries the patterns it can match."""

    def __init__(self, patterns: list[CompiledPattern]) -> None:
        self.patterns = patterns
        self._by_word: dict[str, list[CompiledPattern]] = {}
        self._by_prefix: dict[str, list[tuple[str, CompiledPattern]]] = {}
        for pattern in patterns:
            for word in pattern.anchor_words:
                self._by_word.setdefault(word, []).append(pattern)
            for prefix in pattern.anchor_prefixes:
                self._by_prefix.setdefault(prefix[:3], []).append((prefix, pattern))

    def find(self, tokens: list[str], where: Mapping[str, list[int]] | None = None) -> list[Match]:
        """Every match; `where` (token -> positions, see `positions`) can be shared between pattern sets."""
        if where is None:
            where = positions(tokens)
        found: dict[tuple[str, int, int], Match] = {}
        hits: dict[int, tuple[CompiledPattern, list[int]]] = {}  # id(pattern) -> (pattern, anchor positions)
        for token in where.keys() & self._by_word.keys():
            for pattern in self._by_word[token]:
                hits.setdefault(id(pattern), (pattern, []))[1].extend(where[token])
        if self._by_prefix:
            for token, at in where.items():
                for prefix, pattern in self._by_prefix.get(token[:3], ()):
                    if token.startswith(prefix):
                        hits.setdefault(id(pattern), (pattern, []))[1].extend(at)
        present = where.keys()
        for pattern, anchors in hits.values():
            if not all(not words.isdisjoint(present) for words in pattern.required):
                continue
            elements, before_min, before_max = pattern.elements, pattern.before_min, pattern.before_max
            for position in anchors:
                low = max(0, position - before_max)
                for start in range(position - before_min, low - 1, -1):
                    for end in _match_seq(elements, 0, tokens, start):
                        if end > start and MASKED not in tokens[start:end]:
                            found.setdefault((pattern.owner, start, end), Match(pattern.owner, start, end))
                        break
        return list(found.values())


def positions(tokens: list[str]) -> dict[str, list[int]]:
    where: dict[str, list[int]] = {}
    for position, token in enumerate(tokens):
        where.setdefault(token, []).append(position)
    return where
