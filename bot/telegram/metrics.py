"""Counters for /metrics and the state /healthz reports: counts only, never who or what."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields

POLLING_STALE_S = 60.0


@dataclass
class Metrics:
    """Monotonic counters since start-up."""

    updates: int = 0  # updates received (polling or webhook), before dedup
    duplicates: int = 0  # updates skipped because their update_id was seen
    malformed: int = 0  # updates that did not parse, skipped
    throttled: int = 0  # updates dropped by flood control (never one with risk >= high)
    replies: int = 0  # engine decisions sent
    crisis_replies: int = 0  # of which showed crisis lines first (risk >= high, /sos, crisis deep link)
    messages_sent: int = 0  # sendMessage calls that succeeded
    send_failures: int = 0  # messages given up on (400, retries exhausted)
    blocked: int = 0  # 403: the person blocked the bot
    errors: int = 0  # handler exceptions answered with the safe fallback, and failed polls

    def render(self) -> str:
        """Prometheus-style plain text: one `hubbot_<name>_total <count>` line per counter."""
        return "".join(f"hubbot_{f.name}_total {getattr(self, f.name)}\n" for f in fields(self))


@dataclass
class Health:
    """What /healthz needs besides the content: in polling mode, when getUpdates last succeeded."""

    polling: bool
    clock: Callable[[], float] = time.monotonic
    started_at: float = field(default=0.0)
    last_poll_ok: float | None = None

    def __post_init__(self) -> None:
        self.started_at = self.clock()

    def poll_succeeded(self) -> None:
        self.last_poll_ok = self.clock()

    def polling_age(self) -> float | None:
        """Seconds since the last successful getUpdates (since start-up before the first); None for webhooks."""
        if not self.polling:
            return None
        return self.clock() - (self.last_poll_ok if self.last_poll_ok is not None else self.started_at)

    def polling_ok(self) -> bool:
        age = self.polling_age()
        return age is None or age <= POLLING_STALE_S
