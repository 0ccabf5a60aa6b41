"""One thing a person did: a message, a command or a button press, with the time it happened."""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass
from typing import Literal

TurnKind = Literal["text", "command", "button"]

COMMANDS: frozenset[str] = frozenset(
    {
        "start",
        "help",
        "sos",
        "resources",
        "videos",
        "creators",
        "organizations",
        "language",
        "region",
        "privacy",
        "forget",
        "stop",
        "menu",
    }
)
CRISIS_DEEP_LINK = "crisis"
TOPIC_DEEP_LINK_PREFIX = "topic-"


@dataclass(frozen=True)
class ButtonPress:
    """A tapped callback button: the action and value the engine put on it."""

    action: str
    value: str | None = None


@dataclass(frozen=True)
class Turn:
    """Exactly one of `text`, `command` or `button` is normally set; `now` is unix seconds."""

    user_key: str
    _: KW_ONLY
    now: float
    text: str | None = None
    command: str | None = None  # without the slash: "start", "sos" ...
    argument: str | None = None  # /start deep-link payload ("crisis", "topic-anxiety")
    button: ButtonPress | None = None
    language_hint: str | None = None  # the client's language ("es", "es-419"), used for a new session

    @property
    def kind(self) -> TurnKind:
        if self.command is not None:
            return "command"
        if self.button is not None:
            return "button"
        return "text"
