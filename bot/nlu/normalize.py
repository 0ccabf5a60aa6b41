"""Turn raw message text into the tokens every vocabulary is matched against.

NFKC, casefold, invisible characters removed (the joiner inside an emoji sequence kept), accents
folded, apostrophes dropped ("don't" -> "dont"), leetspeak read only inside tokens that mix letters
and digits ("k1ll" -> "kill", never "30" or "988"), runs of three or more equal letters folded to the
two- or one-letter form that the vocabulary knows ("killl" -> "kill", "dieeee" -> "die"), slang
expanded from lexicon.yaml, and single-letter typos of vocabulary words corrected.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

BOUNDARY = "."  # a token that ends a sentence; gaps in patterns never cross it
_ZWJ = "\u200d"
_VS16 = "\ufe0f"
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g", "$": "s", "@": "a"})
_TOKEN = re.compile(
    r"(?P<word>[^\W_](?:[^\W_]|['’$@](?=[^\W_]))*)"
    r"|(?P<stop>[.!?;:\n…]+)"
    r"|(?P<emoji>[\U0001F000-\U0001FAFF\u2600-\u27BF\u2B00-\u2BFF](?:[\u200d\ufe0f\U0001F3FB-\U0001F3FF][\U0001F000-\U0001FAFF\u2600-\u27BF]?)*)"
)
_RUN = re.compile(r"(\w)\1{2,}")
_EMOJI = "\U0001F000-\U0001FAFF\u2600-\u27BF\u2B00-\u2BFF"
# Control (Cc), format (Cf), private-use (Co) and surrogate (Cs) characters; the joiner is handled apart.
_INVISIBLE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u180e\u200b\u200c\u200e\u200f"
    "\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\ue000-\uf8ff\ud800-\udfff"
    "\U000e0000-\U000e007f\U000f0000-\U0010ffff]"
)
_STRAY_JOINER = re.compile(f"(?<![{_EMOJI}\ufe0f\U0001F3FB-\U0001F3FF])\u200d|\u200d(?![{_EMOJI}])")
_MARKS = re.compile("[\u0300-\u036f]")
_MEASURE = re.compile(r"^[0-9]+([.,][0-9]+)?(am|pm|h|hr|hrs|mg|mcg|ml|g|kg|lb|lbs|min|mins|k|x|s|st|nd|rd|th|yo|y|m|cm|km|hz|gb|mb)$")
_GLUED_CASE = re.compile(r"(?<=[a-z\u00e0-\u00ff])(?=[A-Z\u00c0-\u00de][a-z\u00e0-\u00ff'’ ]|I\b)")


def clean(text: str) -> str:
    """NFKC + casefold + invisible characters removed; the joiner is kept only between two emoji."""
    text = _INVISIBLE.sub("", unicodedata.normalize("NFKC", text).casefold())
    if _ZWJ in text:
        text = _STRAY_JOINER.sub("", text)
    return text


def prepare(text: str) -> str:
    """`clean`, glued words split, and accents folded for the whole text at once."""
    text = clean(_GLUED_CASE.sub(" ", text))
    if not text.isascii():
        text = _MARKS.sub("", unicodedata.normalize("NFD", text))
    return text


def fold_accents(word: str) -> str:
    decomposed = unicodedata.normalize("NFD", word)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def deletions(word: str) -> set[str]:
    return {word[:i] + word[i + 1 :] for i in range(len(word))}


@dataclass(frozen=True)
class Lexicon:
    """Slang and spelling variants: a token (or a run of tokens) and what it means."""

    single: dict[str, tuple[str, ...]]
    multi: dict[tuple[str, ...], tuple[str, ...]]

    @classmethod
    def build(cls, entries: Iterable[tuple[str, str]]) -> Lexicon:
        single: dict[str, tuple[str, ...]] = {}
        multi: dict[tuple[str, ...], tuple[str, ...]] = {}
        for form, means in entries:
            key = tuple(basic_tokens(form))
            value = tuple(basic_tokens(means))  # empty: the word is dropped (intensifiers)
            if not key or key == value:
                continue
            if len(key) == 1:
                single[key[0]] = value
            else:
                multi[key] = value
        return cls(single, multi)


def basic_word(raw: str) -> str:
    """One word, without slang or typo handling: accents, apostrophes and leetspeak."""
    if raw.isalpha() and raw.isascii():
        return raw
    word = (raw if raw.isascii() else fold_accents(raw)).replace("'", "").replace("’", "")
    if any(c.isdigit() for c in word) and any(c.isalpha() for c in word):
        if not _MEASURE.match(word):  # "3am", "500mg", "2nd" are numbers with units, not leetspeak
            word = word.translate(_LEET)
    elif "$" in word or "@" in word:
        word = word.translate(_LEET)
    return word


def basic_tokens(text: str) -> list[str]:
    """Tokens of a vocabulary phrase: the same cleaning as messages, no typo correction."""
    tokens: list[str] = []
    for match in _TOKEN.finditer(prepare(text)):
        if match.lastgroup == "word":
            tokens.append(basic_word(match.group()))
        elif match.lastgroup == "stop":
            tokens.append(BOUNDARY)
        else:
            tokens.append(match.group().replace(_VS16, ""))
    return tokens


class Normalizer:
    """Built once per content load from the lexicon and the vocabulary the matchers know."""

    def __init__(
        self,
        lexicon: Lexicon,
        vocabulary: Iterable[str],
        known: Iterable[str] = (),
        min_typo_length: int = 5,
        stems: Iterable[str] = (),
    ) -> None:
        self.lexicon = lexicon
        self._stems = tuple(sorted(set(stems)))  # `word*` prefixes of the vocabularies: such words are never split
        self.vocabulary = frozenset(w for w in vocabulary if w and w != BOUNDARY)
        self.known = self.vocabulary | frozenset(known) | frozenset(lexicon.single) | {w for key in lexicon.multi for w in key}
        self.min_typo_length = min_typo_length
        self._max_multi = max((len(k) for k in lexicon.multi), default=1)
        self._multi_starts = frozenset(key[0] for key in lexicon.multi)
        # Words that come out of normalization as they went in: the fast path for most tokens.
        self._plain = frozenset(
            w for w in self.known if w.isalpha() and w.isascii() and w not in lexicon.single and w not in self._multi_starts and not _RUN.search(w)
        )
        # Deletion index: every vocabulary word and each of its one-letter deletions -> the words.
        self._deletes: dict[str, list[str]] = {}
        for word in sorted(self.vocabulary):
            if len(word) >= min_typo_length - 1 and word.isalpha():
                for key in deletions(word) | {word}:
                    self._deletes.setdefault(key, []).append(word)

    def correct(self, word: str) -> str:
        """The vocabulary word one typo away from `word` (the likeliest one), or `word` itself."""
        if word in self.known or not word.isalpha() or len(word) < 3 or word.startswith(self._stems):
            return word
        if len(word) < self.min_typo_length:
            # Short words: only a swapped pair ("wnat") or a single letter where a double belongs ("kil").
            for candidate in _short_word_fixes(word):
                if candidate in self.vocabulary:
                    return candidate
            return word
        candidates: list[str] = []
        for key in deletions(word) | {word}:
            candidates.extend(self._deletes.get(key, ()))
        candidates = [c for c in dict.fromkeys(candidates) if _one_edit(word, c)]
        if not candidates:
            return word
        # Prefer a candidate that keeps the first letter; typos rarely hit it.
        candidates.sort(key=lambda c: (c[0] != word[0], abs(len(c) - len(word)), c))
        return candidates[0]

    def fold_runs(self, word: str) -> str:
        if not _RUN.search(word):
            return word
        two = _RUN.sub(r"\1\1", word)
        one = _RUN.sub(r"\1", word)
        for words in (self.vocabulary, self.known):
            for form in (two, one):
                if form in words:
                    return form
        for form in (two, one):
            corrected = self.correct(form)
            if corrected != form:
                return corrected
        # Try each run independently at 1 or 2 letters ("soooo saaad" style mixes are handled per token).
        one_each = re.sub(r"(\w)\1+", r"\1", word)
        if one_each in self.known:
            return one_each
        return two

    def tokens(self, text: str) -> list[str]:
        raw: list[str] = []
        plain = self._plain
        # prepare() also splits "ending it allI can't" (a title glued to its body) at lower->Upper.
        for match in _TOKEN.finditer(prepare(text)):
            kind = match.lastgroup
            if kind == "word":
                word = match.group()
                raw.append(word if word in plain else self.fold_runs(basic_word(word)))
            elif kind == "stop":
                if raw and raw[-1] != BOUNDARY:
                    raw.append(BOUNDARY)
            else:
                raw.append(match.group().replace(_VS16, ""))
        return self._expand(raw)

    def _expand(self, raw: list[str]) -> list[str]:
        out: list[str] = []
        single, multi, plain, starts = self.lexicon.single, self.lexicon.multi, self._plain, self._multi_starts
        i = 0
        count = len(raw)
        while i < count:
            word = raw[i]
            if word in starts:
                size = 0
                for size in range(min(self._max_multi, count - i), 1, -1):
                    key = tuple(raw[i : i + size])
                    if key in multi:
                        out.extend(multi[key])
                        break
                else:
                    size = 0
                if size:
                    i += size
                    continue
            if word in plain:
                out.append(word)
            elif word in single:
                out.extend(single[word])
            else:
                corrected = self.correct(word)
                parts = (corrected,) if corrected != word else self.split_glued(word)
                for part in parts:
                    out.extend(single.get(part, (part,)))
            i += 1
        return out

    def split_glued(self, word: str) -> tuple[str, ...]:
        """Two known words written without a space ("dienothing" -> "die nothing"), else the word."""
        if word in self.known or len(word) < 5 or not word.isalpha():
            return (word,)
        stem = max((len(s) for s in self._stems if word.startswith(s)), default=0)
        known = self.known
        best: tuple[str, str] | None = None
        for cut in range(1, len(word)):
            left, right = word[:cut], word[cut:]
            if cut < stem:
                continue  # "deadnaming" is one word that a `deadnam*` vocabulary entry expects
            if _splittable(left) and _splittable(right) and left in known and right in known:
                if left in self.vocabulary or right in self.vocabulary:
                    if best is None or max(len(left), len(right)) > max(len(best[0]), len(best[1])):
                        best = (left, right)
        return best if best else (word,)


def _splittable(part: str) -> bool:
    return len(part) >= 3 or part in _SHORT_WORDS


_SHORT_WORDS = frozenset("i a im id me my no to so is it in on at of we he be do go up or if an as by us ya yo mi tu te se lo la el".split())


def _short_word_fixes(word: str) -> list[str]:
    swaps = [word[:i] + word[i + 1] + word[i] + word[i + 2 :] for i in range(len(word) - 1) if word[i] != word[i + 1]]
    doubles = [word[: i + 1] + word[i] + word[i + 1 :] for i in range(len(word))]
    return swaps + doubles


def _one_edit(a: str, b: str) -> bool:
    """True when a and b differ by one insertion, deletion, substitution or adjacent swap."""
    if a == b:
        return False
    la, lb = len(a), len(b)
    if abs(la - lb) > 1:
        return False
    if la == lb:
        diff = [i for i in range(la) if a[i] != b[i]]
        if len(diff) == 1:
            return True
        return len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]
    if la > lb:
        a, b = b, a
    # b is one longer than a
    for i in range(len(a)):
        if a[i] != b[i]:
            return a[i:] == b[i + 1 :]
    return True
