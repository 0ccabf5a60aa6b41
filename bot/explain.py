"""What one message would get from a fresh conversation, as a plain dict (`hubbot explain`)."""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

from bot.content.loader import Content
from bot.nlu.pipeline import Understander

log = logging.getLogger(__name__)


def _button(button: Any) -> dict[str, Any]:
    return {key: value for key, value in dataclasses.asdict(button).items() if value is not None}


class Explainer:
    def __init__(self, content: Content, *, default_region: str) -> None:
        from bot.engine.engine import Engine

        self.understander = Understander(content)
        self.engine = Engine(content, self.understander)
        self.default_region = default_region

    def explain(self, text: str, *, language: str | None = None, region: str | None = None) -> dict[str, Any]:
        from bot.engine.session import SessionState
        from bot.engine.turn import Turn

        understanding = self.understander.understand(text)
        session = None
        if language or region:
            session = SessionState(language=language or self.engine.content.languages[0], region=(region or self.default_region).upper())
        decision = self.engine.handle(session, Turn(user_key="explain", text=text, language_hint=language, now=time.time()), default_region=(region or self.default_region).upper())
        reply = decision.reply
        return {
            "risk": understanding.risk.level.label,
            "about": understanding.risk.about,
            "signals": list(understanding.risk.signals),
            "intent": understanding.intent.intent_id,
            "score": understanding.intent.score,
            "topics": sorted(set(understanding.intent.topics) | set(understanding.risk.topics)),
            "language": understanding.language,
            "rule": decision.rule,
            "resources": list(reply.resources),
            "reply": {"text": reply.text, "buttons": [_button(button) for button in reply.buttons]},
        }
