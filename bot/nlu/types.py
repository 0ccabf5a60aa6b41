"""Plain results of understanding one message: what the risk is, what it is about, which intent it matches."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.content.models import About, RiskLevel


@dataclass(frozen=True)
class RiskAssessment:
    level: RiskLevel
    about: About = "self"
    signals: tuple[str, ...] = ()  # ids of the signals, modifiers and masks that fired (never message text)
    denial: bool = False  # an explicit denial ("I'm not suicidal") was the strongest thing said
    topics: tuple[str, ...] = ()  # topics implied by the signals (suicide, self_harm, bullying ...)


@dataclass(frozen=True)
class IntentCandidate:
    intent_id: str
    score: float  # 0..100


@dataclass(frozen=True)
class IntentMatch:
    intent_id: str | None  # None: below the confidence threshold, the engine asks which topic
    score: float
    topics: tuple[str, ...] = ()
    candidates: tuple[IntentCandidate, ...] = ()


@dataclass(frozen=True)
class Understanding:
    risk: RiskAssessment
    intent: IntentMatch
    language: str | None = None  # "es" when the message reads as Spanish, "en" as English, None when unsure
    normalized: str = field(default="", repr=False)
