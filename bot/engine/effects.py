"""What a turn asks the app to do besides replying: record, refer, notify, forget, stop."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Union

EventKind = Literal["text", "command", "button"]


@dataclass(frozen=True)
class SaveEvent:
    """One row of what the turn decided. There is deliberately no field for what the person wrote."""

    kind: EventKind
    intent: str | None
    risk: str  # none | concern | high | imminent
    rule: str | None
    resources: tuple[str, ...] = ()


@dataclass(frozen=True)
class QueueReferral:
    """A referral the person consented to; `payload` holds only the fields the organisation is allowed."""

    org_id: str
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NotifyStaff:
    """A notice for the hub's staff: no identity, no message text."""

    text: str


@dataclass(frozen=True)
class ForgetUser:
    """Delete every row about this person (the app then saves nothing for this turn)."""


@dataclass(frozen=True)
class StopUser:
    """The person asked the bot to stop: send them nothing unprompted."""


Effect = Union[SaveEvent, QueueReferral, NotifyStaff, ForgetUser, StopUser]
