"""Assess the risk in one message: none < concern < high < imminent, who it is about, and why.

Order of work: masks first (idioms, denials, reports of what someone said) remove their own words;
signals are then searched in what is left; a plan, means or time in the same message raises a
self-harm signal to imminent. Nothing here can be lowered by an intent match.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.content.models import About, Escalation, RiskLevel
from bot.nlu.normalize import BOUNDARY
from bot.nlu.patterns import MASKED, Match, PatternCompiler, PatternSet, positions
from bot.nlu.types import RiskAssessment

LOOKBACK = 8


LAUGHTER_REACH = 3  # words after a signal, in the same sentence, where laughter marks it as a joke


@dataclass(frozen=True)
class _SignalInfo:
    level: RiskLevel
    about: str
    topics: tuple[str, ...]
    softened_by_laughter: bool


class RiskDetector:
    def __init__(self, escalation: Escalation, compiler: PatternCompiler) -> None:
        self._signals = {
            s.id: _SignalInfo(RiskLevel.parse(s.level), s.about, tuple(s.topics), s.softened_by_laughter) for s in escalation.signals
        }
        self._laughter = PatternSet([compiler.compile("laughter", p) for p in escalation.laughter])
        self._masks = {m.id: m for m in escalation.masks}
        self._modifier_kinds = {m.id: m.kind for m in escalation.modifiers}
        self._signal_set = PatternSet([compiler.compile(s.id, p) for s in escalation.signals for p in s.patterns])
        self._modifier_set = PatternSet([compiler.compile(m.id, p) for m in escalation.modifiers for p in m.patterns])
        self._mask_set = PatternSet([compiler.compile(m.id, p) for m in escalation.masks for p in m.patterns])
        self._self_words = frozenset(w for word in escalation.subjects.self for w in compiler_words(compiler, word))
        self._other_words = frozenset(w for word in escalation.subjects.other for w in compiler_words(compiler, word))
        self._boundaries = frozenset(w for word in escalation.subjects.boundaries for w in compiler_words(compiler, word)) | {BOUNDARY}

    def assess(self, tokens: list[str], where: dict[str, list[int]] | None = None) -> RiskAssessment:
        """`where` (token -> positions) may be passed in when the caller has it already."""
        if where is None:
            where = positions(tokens)
        masks = _longest_first(self._mask_set.find(tokens, where))
        working = list(tokens)
        fired_masks: list[Match] = []
        for match in masks:
            if MASKED in working[match.start : match.end]:
                continue
            working[match.start : match.end] = [MASKED] * (match.end - match.start)
            fired_masks.append(match)

        level = RiskLevel.NONE
        about: About = "self"
        signals: list[str] = []
        topics: list[str] = []
        if fired_masks:
            where = positions(working)
        laughs = [m.start for m in self._laughter.find(working, where)] if self._laughter.patterns else []
        for match in sorted(self._signal_set.find(working, where), key=lambda m: m.start):
            info = self._signals[match.owner]
            who = self._about(info.about, working, match.start)
            if info.softened_by_laughter and info.level == RiskLevel.HIGH and self._joking(working, match.end, laughs):
                info = _SignalInfo(RiskLevel.CONCERN, info.about, info.topics, True)
                if "laughter" not in signals:
                    signals.append("laughter")
            if match.owner not in signals:
                signals.append(match.owner)
            topics.extend(t for t in info.topics if t not in topics)
            if info.level > level or (info.level == level and who == "self"):
                if info.level > level:
                    about = who
                elif who == "self":
                    about = "self"
                level = max(level, info.level)

        if level >= RiskLevel.HIGH:
            modifiers = self._modifier_set.find(working, where)
            if modifiers:
                level = RiskLevel.IMMINENT
                signals.extend(dict.fromkeys(m.owner for m in modifiers))
        elif level == RiskLevel.CONCERN:
            planning = [m.owner for m in self._modifier_set.find(working, where) if self._modifier_kinds[m.owner] != "time"]
            if planning:
                # Distress with a plan or the means at hand is a crisis even without the words for it.
                level = RiskLevel.HIGH
                signals.extend(dict.fromkeys(planning))
            elif len({s for s in signals if s in self._signals and self._signals[s].level == RiskLevel.CONCERN}) >= 2:
                # Several distinct distress signals in one message read as more than one of them alone.
                level = RiskLevel.HIGH
                signals.append("concern_cluster")

        denial = False
        for match in fired_masks:
            mask = self._masks[match.owner]
            signals.append(mask.id)
            topics.extend(t for t in mask.topics if t not in topics)
            if mask.kind == "denial" and level < RiskLevel.HIGH:
                denial = True
                level = max(level, RiskLevel.CONCERN)
            elif mask.kind == "report":
                level = max(level, RiskLevel.CONCERN)
        return RiskAssessment(level=level, about=about, signals=tuple(dict.fromkeys(signals)), denial=denial and level < RiskLevel.HIGH, topics=tuple(topics))

    @staticmethod
    def _joking(tokens: list[str], end: int, laughs: list[int]) -> bool:
        for position in laughs:
            if end <= position < end + LAUGHTER_REACH and BOUNDARY not in tokens[end:position]:
                return True
        return False

    def _about(self, fixed: str, tokens: list[str], start: int) -> About:
        if fixed in ("self", "other"):
            return fixed  # type: ignore[return-value]
        for position in range(start - 1, max(-1, start - 1 - LOOKBACK), -1):
            token = tokens[position]
            if token in self._boundaries:
                break
            if token in self._self_words:
                return "self"
            if token in self._other_words:
                return "other"
        return "self"


def compiler_words(compiler: PatternCompiler, text: str) -> list[str]:
    return compiler._word_tokens(text)  # noqa: SLF001 - same normalization as the patterns


def _longest_first(matches: list[Match]) -> list[Match]:
    return sorted(matches, key=lambda m: (-(m.end - m.start), m.start))
