"""How records become table rows and back; both backends store the same columns the same way."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from bot.store.records import LiveSessionRecord, ReferralRecord, Stats

MAX_ERROR_CHARS = 500

REFERRAL_COLUMNS = (
    "id, user_key, org_id, status, payload, attempts, next_attempt_at, created_at, updated_at, last_error, claimed_by"
)


def dumps(value: object) -> str:
    """JSON as stored in TEXT columns: compact, sorted keys, non-ASCII kept (the same bytes on both engines)."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def referral_row(referral: ReferralRecord) -> tuple[Any, ...]:
    """The values of REFERRAL_COLUMNS, in order."""
    return (
        referral.id,
        referral.user_key,
        referral.org_id,
        referral.status,
        dumps(referral.payload),
        int(referral.attempts),
        float(referral.next_attempt_at),
        float(referral.created_at),
        float(referral.updated_at),
        referral.last_error,
        referral.claimed_by,
    )


def referral_from_row(row: Iterable[Any]) -> ReferralRecord:
    """A record from the values of REFERRAL_COLUMNS (extra trailing values are ignored)."""
    (id_, user_key, org_id, status, payload, attempts, next_attempt_at, created_at, updated_at, last_error,
     claimed_by) = tuple(row)[:11]
    return ReferralRecord(
        id=id_,
        user_key=user_key,
        org_id=org_id,
        status=status,
        payload=json.loads(payload),
        attempts=int(attempts),
        next_attempt_at=float(next_attempt_at),
        created_at=float(created_at),
        updated_at=float(updated_at),
        last_error=last_error,
        claimed_by=claimed_by,
    )


def check_claim(worker_id: str, lease_seconds: float) -> None:
    """The arguments claim_referrals refuses on every backend."""
    if not worker_id or not worker_id.strip():
        raise ValueError("claim_referrals: worker_id must name the worker")
    if not lease_seconds > 0:
        raise ValueError(f"claim_referrals: lease_seconds must be positive (got {lease_seconds!r})")


# Counts for /stats, one query per group; `{p}` is the engine's placeholder for `since` ("?" or "$1").
STATS_TOTALS = "SELECT COUNT(*), COUNT(DISTINCT user_key) FROM events WHERE at >= {p}"
STATS_GROUPS = {
    "by_kind": "SELECT kind, COUNT(*) FROM events WHERE at >= {p} GROUP BY kind",
    "by_intent": "SELECT intent, COUNT(*) FROM events WHERE at >= {p} AND intent IS NOT NULL GROUP BY intent",
    "by_risk": "SELECT risk, COUNT(*) FROM events WHERE at >= {p} GROUP BY risk",
    "by_rule": "SELECT rule, COUNT(*) FROM events WHERE at >= {p} AND rule IS NOT NULL GROUP BY rule",
    "referrals_by_status": "SELECT status, COUNT(*) FROM referrals WHERE created_at >= {p} GROUP BY status",
}


def stats_from(since: float, total: int, users: int, groups: dict[str, Iterable[tuple[Any, Any]]]) -> Stats:
    counted = {name: {str(key): int(count) for key, count in rows} for name, rows in groups.items()}
    return Stats(
        since=since,
        events=int(total),
        users=int(users),
        by_kind=counted["by_kind"],
        by_intent=counted["by_intent"],
        no_intent=int(total) - sum(counted["by_intent"].values()),
        by_risk=counted["by_risk"],
        by_rule=counted["by_rule"],
        referrals_by_status=counted["referrals_by_status"],
    )


LIVE_COLUMNS = "user_key, org_id, chat_id, staff_chat_id, topic_id, opened_at, last_staff_at"


def live_from_row(row: Any) -> LiveSessionRecord:
    key, org_id, chat_id, staff_chat_id, topic_id, opened_at, last_staff_at = row
    return LiveSessionRecord(
        key, org_id, int(chat_id), int(staff_chat_id), int(topic_id), float(opened_at),
        None if last_staff_at is None else float(last_staff_at),
    )
