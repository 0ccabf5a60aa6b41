"""The engine's whole answer to one turn: the reply, the next session state and the effects."""

from __future__ import annotations

from dataclasses import dataclass

from bot.engine.effects import Effect
from bot.engine.reply import Reply
from bot.engine.session import SessionState
from bot.nlu.types import Understanding


@dataclass(frozen=True)
class Decision:
    reply: Reply
    session: SessionState
    effects: tuple[Effect, ...]
    understanding: Understanding | None
    rule: str | None
    error: BaseException | None = None  # set when the engine answered with its safe fallback

    @property
    def risk(self) -> str:
        return self.understanding.risk.level.label if self.understanding is not None else "none"
