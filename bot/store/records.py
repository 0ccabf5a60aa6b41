"""Plain records that cross the store boundary; none of them has a place for message text."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

REFERRAL_STATUSES: tuple[str, ...] = (
    "pending",  # queued, not yet sent
    "delivering",  # a worker is sending it now
    "delivered",  # the organisation received it; awaiting its acknowledgement
    "acknowledged",  # the organisation accepted it
    "declined",  # the organisation declined it
    "failed",  # the last attempt failed; another follows at next_attempt_at
    "dead",  # gave up after the last attempt
    "cancelled",  # the person withdrew it
)
FINISHED_REFERRAL_STATUSES: frozenset[str] = frozenset({"acknowledged", "declined", "dead", "cancelled"})
RETRYABLE_REFERRAL_STATUSES: tuple[str, ...] = ("pending", "failed")
# What claim_referrals takes when due: the ones ready to send, and `delivering` ones whose lease ran out.
CLAIMABLE_REFERRAL_STATUSES: tuple[str, ...] = (*RETRYABLE_REFERRAL_STATUSES, "delivering")


def referral_purpose(referral_id: str) -> str:
    """The chat-ref purpose under which a referral keeps its person's chat id until it resolves."""
    return f"referral:{referral_id}"


@dataclass(frozen=True)
class UserRecord:
    user_key: str
    language: str | None
    region: str | None
    consent: dict[str, bool]
    created_at: float
    last_seen: float
    active: bool = True

    @classmethod
    def new(cls, user_key: str, now: float, *, language: str | None = None, region: str | None = None) -> UserRecord:
        return cls(user_key, language, region, {}, now, now, True)


@dataclass(frozen=True)
class SessionRecord:
    user_key: str
    state: dict[str, Any]  # JSON-able; tuples come back as lists
    updated_at: float


@dataclass(frozen=True)
class EventRecord:
    """What one turn decided: never what the person wrote."""

    user_key: str
    at: float
    kind: str  # message | callback | edit | command ...
    intent: str | None
    risk: str  # none | concern | high | imminent
    rule: str | None = None
    resources: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.resources, tuple):
            object.__setattr__(self, "resources", tuple(self.resources))


@dataclass(frozen=True)
class ReferralRecord:
    id: str
    user_key: str
    org_id: str
    status: str
    payload: dict[str, Any]  # only what the person agreed to share; JSON-able
    attempts: int
    next_attempt_at: float  # when the outbox worker next has to act on it
    created_at: float
    updated_at: float
    last_error: str | None = None
    claimed_by: str | None = None  # the outbox worker that last claimed it (claim_referrals); no personal data

    def __post_init__(self) -> None:
        if self.status not in REFERRAL_STATUSES:
            raise ValueError(f"unknown referral status {self.status!r}; expected one of {', '.join(REFERRAL_STATUSES)}")

    @classmethod
    def new(cls, user_key: str, org_id: str, payload: dict[str, Any], now: float) -> ReferralRecord:
        return cls(str(uuid.uuid4()), user_key, org_id, "pending", payload, 0, now, now, now)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_REFERRAL_STATUSES


@dataclass(frozen=True)
class Stats:
    """Counts over the events recorded at or after `since` (and the referrals created since then)."""

    since: float
    events: int = 0
    users: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    by_intent: dict[str, int] = field(default_factory=dict)  # events without an intent are counted in `no_intent`
    no_intent: int = 0
    by_risk: dict[str, int] = field(default_factory=dict)
    by_rule: dict[str, int] = field(default_factory=dict)  # events without a rule are not counted here
    referrals_by_status: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class LiveSessionRecord:
    """An open live conversation: the person's chat and the staff topic, kept only while it is open.

    No message text; `last_staff_at` is when a listed staff member last answered in the topic (None: not yet).
    """

    user_key: str
    org_id: str
    chat_id: int  # the person's private chat
    staff_chat_id: int
    topic_id: int  # message_thread_id of the forum topic in the staff chat
    opened_at: float
    last_staff_at: float | None = None
