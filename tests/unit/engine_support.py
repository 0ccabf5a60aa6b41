"""Shared helpers for the engine, app and chat tests: a content copy, a scripted understander, turn builders."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

from bot.content.loader import Content, load_content
from bot.content.models import RiskLevel
from bot.nlu.types import IntentMatch, RiskAssessment, Understanding

SHIPPED = Path(__file__).resolve().parents[2]
T0 = 1_767_261_600.0  # 2026-01-01 10:00 UTC, a Thursday


def copy_content(target: Path) -> Path:
    """Copy the shipped content into `target` (for tests that change or break it)."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(SHIPPED / "resources.yaml", target / "resources.yaml")
    shutil.copytree(SHIPPED / "intents", target / "intents", dirs_exist_ok=True)
    return target


def understanding(
    risk: str = "none",
    *,
    about: str = "self",
    denial: bool = False,
    topics: tuple[str, ...] = (),
    intent: str | None = None,
    intent_topics: tuple[str, ...] = (),
    language: str | None = None,
    normalized: str = "",
) -> Understanding:
    return Understanding(
        risk=RiskAssessment(level=RiskLevel.parse(risk), about=about, denial=denial, topics=topics),  # type: ignore[arg-type]
        intent=IntentMatch(intent_id=intent, score=90.0 if intent else 0.0, topics=intent_topics),
        language=language,
        normalized=normalized,
    )


class ScriptedUnderstander:
    """Answers `understand(text)` from a table (text -> Understanding); anything else is risk none, no intent."""

    def __init__(self, script: Mapping[str, Understanding] | None = None) -> None:
        self.script = dict(script or {})
        self.seen: list[str] = []

    def understand(self, text: str) -> Understanding:
        self.seen.append(text)
        return self.script.get(text, understanding())


def content_at(path: Path) -> Content:
    return load_content(path)
