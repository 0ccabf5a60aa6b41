"""How records become table rows and back; both backends store the same columns the same way."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from bot.store.records import ReferralRecord

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
