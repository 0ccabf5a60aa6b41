"""The versioned JSON documents an organisation receives, as canonical bytes (the bytes that are signed).

A referral carries only the fields the organisation's `fields` list asks for AND the person agreed to
share (what the consent screen showed them, stored in the referral row). Never a transcript, never the
raw chat id, never the user key. An alert (a referral we could not deliver, or one nobody acknowledged)
carries no person at all.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Collection, Mapping
from typing import Any, Literal

PAYLOAD_VERSION = 1
PERSON_FIELDS: tuple[str, ...] = ("alias", "contact_method", "topic", "risk", "language", "region")
MAX_FIELD_CHARS = 200
TEST_ID_PREFIX = "test-"

AlertKind = Literal["undeliverable", "not_acknowledged"]


def canonical_json(document: Mapping[str, Any]) -> bytes:
    """UTF-8 JSON with sorted keys and no spaces: the same document always gives the same bytes."""
    return json.dumps(document, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")


def iso_utc(unix_seconds: float) -> str:
    """`2026-11-27T09:30:00Z` (whole seconds, UTC)."""
    moment = dt.datetime.fromtimestamp(int(unix_seconds), tz=dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def person_fields(consented: Mapping[str, Any], requested: Collection[str]) -> dict[str, str]:
    """The consented values the organisation asks for: known field names, short strings only."""
    person: dict[str, str] = {}
    for name in PERSON_FIELDS:
        value = consented.get(name)
        if name in requested and isinstance(value, str) and value.strip():
            person[name] = value.strip()[:MAX_FIELD_CHARS]
    return person


def referral_document(
    referral_id: str,
    org_id: str,
    created_at: float,
    consented: Mapping[str, Any],
    requested: Collection[str],
    *,
    test: bool = False,
) -> dict[str, Any]:
    return {
        "version": PAYLOAD_VERSION,
        "type": "referral",
        "referral_id": referral_id,
        "org_id": org_id,
        "created_at": iso_utc(created_at),
        "test": bool(test),
        "person": person_fields(consented, requested),
    }


def alert_document(referral_id: str, org_id: str, kind: AlertKind, at: float, *, test: bool = False) -> dict[str, Any]:
    """What the fallback channel gets when a referral needs a human: ids and times, nobody's data."""
    return {
        "version": PAYLOAD_VERSION,
        "type": "alert",
        "alert": kind,
        "referral_id": referral_id,
        "org_id": org_id,
        "at": iso_utc(at),
        "test": bool(test),
    }


def is_test_id(referral_id: str) -> bool:
    return referral_id.startswith(TEST_ID_PREFIX)
