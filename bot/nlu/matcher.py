"""Match a message to an intent: rapidfuzz against each intent's examples, plus its keywords.

Built once per content load. A message is compared only with the examples that share a
content word with it (an inverted index), so one message costs well under a millisecond.
Scores are 0..100; below `threshold` there is no intent and the engine asks which topic.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from rapidfuzz import fuzz

from bot.content.models import Intent
from bot.nlu.normalize import BOUNDARY
from bot.nlu.patterns import PatternCompiler, PatternSet
from bot.nlu.types import IntentCandidate, IntentMatch

Scorer = Callable[..., float]
SCORERS: dict[str, Scorer] = {
    "ratio": fuzz.ratio,
    "token_sort_ratio": fuzz.token_sort_ratio,
    "token_set_ratio": fuzz.token_set_ratio,
    "token_ratio": fuzz.token_ratio,
    "WRatio": fuzz.WRatio,
    "QRatio": fuzz.QRatio,
}
DEFAULT_SCORER = "token_ratio"
DEFAULT_THRESHOLD = 80.0  # for example similarity alone; one keyword hit always passes
KEYWORD_BASE = 80.0
KEYWORD_STEP = 6.0
STOPWORD_SHARE = 0.04
FUZZY_MAX_WORDS = 14  # longer messages are routed by keywords: whole-string similarity means little there
EVIDENCE_MIN_WORDS = 2  # content words an intent's examples must share with a message to count as evidence
EVIDENCE_SCALE = 30.0


@dataclass(frozen=True)
class _Example:
    intent_id: str
    text: str


class IntentMatcher:
    def __init__(
        self,
        intents: Sequence[Intent],
        tokenize: Callable[[str], list[str]],
        compiler: PatternCompiler,
        *,
        scorer: str = DEFAULT_SCORER,
        threshold: float = DEFAULT_THRESHOLD,
        is_function_word: Callable[[str], bool] = lambda word: False,
        evidence_threshold: float = 1.0,
    ) -> None:
        self._tokenize = tokenize
        self._scorer = SCORERS[scorer]
        self.threshold = threshold
        self._topics = {intent.id: tuple(intent.topics) for intent in intents}
        self._examples: list[_Example] = []
        seen: set[tuple[str, str]] = set()
        for intent in intents:
            for examples in intent.examples.values():
                for example in examples:
                    text = " ".join(t for t in tokenize(example) if t != BOUNDARY)
                    if text and (intent.id, text) not in seen:
                        seen.add((intent.id, text))
                        self._examples.append(_Example(intent.id, text))
        frequency = Counter(word for example in self._examples for word in set(example.text.split()))
        limit = max(3, int(len(self._examples) * STOPWORD_SHARE))
        self._stopwords = frozenset(word for word, count in frequency.items() if count > limit)
        self._index: dict[str, list[int]] = {}
        for number, example in enumerate(self._examples):
            for word in set(example.text.split()) - self._stopwords:
                self._index.setdefault(word, []).append(number)
        self._weights = self._evidence_weights(is_function_word)
        self.evidence_threshold = evidence_threshold
        keyword_patterns = []
        for intent in intents:
            for words in intent.keywords.values():
                for keyword in words:
                    keyword_patterns.append(compiler.compile(f"{intent.id}\t{keyword}", keyword))
        self._keywords = PatternSet(keyword_patterns)

    @property
    def stopwords(self) -> frozenset[str]:
        return self._stopwords

    def _evidence_weights(self, is_function_word: Callable[[str], bool]) -> dict[str, dict[str, float]]:
        """word -> {intent: weight}: how much a content word of the examples points to each intent.

        Long messages rarely resemble any one example as a whole, but their words still do: "numb",
        "empty" and "unmotivated" across a depression intent's examples are evidence in a long post.
        """
        per_intent: dict[str, Counter[str]] = {}
        sizes: Counter[str] = Counter()
        for example in self._examples:
            sizes[example.intent_id] += 1
            words = {w for w in example.text.split() if len(w) > 2 and not w.isdigit() and not is_function_word(w)}
            per_intent.setdefault(example.intent_id, Counter()).update(words)
        spread: Counter[str] = Counter(word for counts in per_intent.values() for word in counts)
        total = len(per_intent)
        weights: dict[str, dict[str, float]] = {}
        for intent_id, counts in per_intent.items():
            for word, count in counts.items():
                share = count / sizes[intent_id]
                weights.setdefault(word, {})[intent_id] = share * math.log(1 + total / spread[word])
        return weights

    def _evidence(self, words: list[str]) -> dict[str, float]:
        sums: dict[str, float] = {}
        support: Counter[str] = Counter()
        for word in set(words):
            for intent_id, weight in self._weights.get(word, {}).items():
                sums[intent_id] = sums.get(intent_id, 0.0) + weight
                support[intent_id] += 1
        return {i: total for i, total in sums.items() if support[i] >= EVIDENCE_MIN_WORDS and total >= self.evidence_threshold}

    def match(self, tokens: list[str], where: Mapping[str, list[int]] | None = None) -> IntentMatch:
        words = [t for t in tokens if t != BOUNDARY]
        scores: dict[str, float] = {}
        query = " ".join(words)
        if words and len(words) <= FUZZY_MAX_WORDS:
            candidates: set[int] = set()
            for word in set(words) - self._stopwords:
                candidates.update(self._index.get(word, ()))
            if not candidates and len(words) <= 3:
                candidates = set(range(len(self._examples)))  # "hi", "thanks": all stopwords, compare with everything
            for number in candidates:
                example = self._examples[number]
                score = self._scorer(query, example.text, score_cutoff=50)
                if score > scores.get(example.intent_id, 0.0):
                    scores[example.intent_id] = score
        for intent_id, total in self._evidence(words).items():
            evidence_score = min(99.0, self.threshold + EVIDENCE_SCALE * (total - self.evidence_threshold))
            scores[intent_id] = max(scores.get(intent_id, 0.0), evidence_score)
        hits: Counter[str] = Counter()
        first_hit: dict[str, int] = {}
        # The first sentence (a question's title, an opening line) usually names the topic: its keywords count double.
        first_sentence_end = tokens.index(BOUNDARY) if BOUNDARY in tokens[:-1] else len(tokens)
        seen_keywords: set[str] = set()
        covered: dict[str, int] = {}  # intent -> end of its last counted keyword: overlapping ones count once
        for match in sorted(self._keywords.find(tokens, where), key=lambda m: (m.start, -m.end)):
            intent_id = match.owner.split("\t", 1)[0]
            if match.owner in seen_keywords or match.start < covered.get(intent_id, 0):
                continue
            seen_keywords.add(match.owner)
            covered[intent_id] = match.end
            hits[intent_id] += 2 if match.start < first_sentence_end < len(tokens) else 1
            first_hit.setdefault(intent_id, match.start)
        for intent_id, count in hits.items():
            keyword_score = max(self.threshold, min(100.0, KEYWORD_BASE + KEYWORD_STEP * count))
            # Keywords and examples agreeing is stronger than either alone; an earlier first hit breaks ties.
            scores[intent_id] = max(scores.get(intent_id, 0.0), keyword_score) + min(count, 5) * 0.5 - first_hit[intent_id] * 1e-4
        ranked = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
        candidates_out = tuple(IntentCandidate(intent_id, round(min(score, 100.0), 1)) for intent_id, score in ranked[:3])
        if not ranked or ranked[0][1] < self.threshold:
            top = ranked[0][1] if ranked else 0.0
            return IntentMatch(intent_id=None, score=round(min(top, 100.0), 1), candidates=candidates_out)
        best, score = ranked[0]
        return IntentMatch(intent_id=best, score=round(min(score, 100.0), 1), topics=self._topics[best], candidates=candidates_out)
