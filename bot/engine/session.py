"""What the bot remembers about a conversation between turns, as a JSON-able frozen value."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

RECENT_WINDOW = 10  # turns of risk history kept at least (the rules may ask for more)


@dataclass(frozen=True)
class SessionState:
    language: str
    region: str
    turn: int = 0  # how many turns this session has had
    recent: tuple[tuple[int, str], ...] = ()  # (turn number, risk level name) of recent assessed messages
    crisis_until_turn: int = 0  # crisis mode is on through this turn number ...
    crisis_until_time: float = 0.0  # ... or until this unix time, whichever ends later
    last_rule: str | None = None
    stopped: bool = False  # the person used /stop: nothing unprompted is sent to them
    topic: str | None = field(default=None)  # the last topic the person picked or talked about
    last_risk: str = "none"  # the highest risk of the last assessed message
    referred: tuple[tuple[str, float], ...] = ()  # (organisation id, when) of referrals queued: a second tap sends nothing

    def referred_recently(self, org_id: str, now: float, within: float = 86400.0) -> bool:
        return any(org == org_id and now - at < within for org, at in self.referred)

    def in_crisis_mode(self, turn_number: int, now: float) -> bool:
        """True while either the turn count or the time window of the last crisis has not ended."""
        return turn_number <= self.crisis_until_turn or now < self.crisis_until_time

    def with_crisis_mode(self, turn_number: int, now: float, turns: int, minutes: int) -> SessionState:
        return replace(
            self,
            crisis_until_turn=max(self.crisis_until_turn, turn_number + turns),
            crisis_until_time=max(self.crisis_until_time, now + minutes * 60.0),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "language": self.language,
            "region": self.region,
            "turn": self.turn,
            "recent": [[number, level] for number, level in self.recent],
            "crisis_until_turn": self.crisis_until_turn,
            "crisis_until_time": self.crisis_until_time,
            "last_rule": self.last_rule,
            "stopped": self.stopped,
            "topic": self.topic,
            "last_risk": self.last_risk,
            "referred": [[org, at] for org, at in self.referred],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, language: str, region: str) -> SessionState:
        """Rebuild a state saved by any version: unknown keys are ignored, bad or missing ones take defaults."""

        def text(key: str, default: str | None) -> str | None:
            value = data.get(key)
            return value if isinstance(value, str) and value else default

        def number(key: str, default: float) -> float:
            value = data.get(key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                return default
            return value

        recent: list[tuple[int, str]] = []
        raw_recent = data.get("recent")
        if isinstance(raw_recent, (list, tuple)):
            for item in raw_recent:
                if (
                    isinstance(item, (list, tuple))
                    and len(item) == 2
                    and isinstance(item[0], int)
                    and not isinstance(item[0], bool)
                    and isinstance(item[1], str)
                ):
                    recent.append((item[0], item[1]))
        return cls(
            language=text("language", language) or language,
            region=text("region", region) or region,
            turn=max(0, int(number("turn", 0))),
            recent=tuple(recent),
            crisis_until_turn=int(number("crisis_until_turn", 0)),
            crisis_until_time=float(number("crisis_until_time", 0.0)),
            last_rule=text("last_rule", None),
            stopped=data.get("stopped") is True,
            topic=text("topic", None),
            last_risk=text("last_risk", "none") or "none",
            referred=tuple(
                (item[0], float(item[1]))
                for item in (data.get("referred") or [])
                if isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], str)
                and isinstance(item[1], (int, float)) and not isinstance(item[1], bool)
            ),
        )
