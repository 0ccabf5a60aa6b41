"""Acknowledgements: `POST /referrals/ack` for webhook organisations, and staff-chat button taps.

`POST /referrals/ack`, signed like our deliveries (X-Hubbot-Timestamp, X-Hubbot-Signature with the
organisation's secret), JSON body `{"referral_id": "...", "status": "accepted" | "declined", "note": "..."}`:

- 200 `{"referral_id", "status": "acknowledged" | "declined"}`: applied now, or already so (idempotent);
- 200 `{"referral_id", "status": "test", "test": true}` for the id of a `hubbot referrals test` referral;
- 400 malformed body; 401 bad or stale signature; 404 unknown referral (or another organisation's);
- 409 `{"error", "status"}`: the referral already ended differently (e.g. not acknowledged in time);
- 413 body over 16 KiB.

`note` is accepted for the organisation's own records and is neither stored nor shown to anyone.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web

from bot.referrals.directory import ReferralDirectory
from bot.referrals.outcomes import ReferralOutcomes
from bot.referrals.payload import is_test_id
from bot.referrals.signing import DEFAULT_TOLERANCE_S, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify

log = logging.getLogger(__name__)

ACK_PATH = "/referrals/ack"
MAX_ACK_BYTES = 16 * 1024
MAX_ID_CHARS = 100
MAX_NOTE_CHARS = 2000
ACK_STATUSES = {"accepted": True, "declined": False}


@dataclass(frozen=True)
class StaffAnswer:
    result: Literal["ok", "conflict", "unknown", "not_allowed", "test"]
    status: str | None = None
    changed: bool = False


def _error(http_status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=http_status)


class AckService:
    """Turns an organisation's answer into the referral's ending (see ReferralOutcomes)."""

    def __init__(
        self,
        directory: ReferralDirectory,
        outcomes: ReferralOutcomes,
        *,
        clock: Callable[[], float] = time.time,
        tolerance: float = DEFAULT_TOLERANCE_S,
    ) -> None:
        self.directory = directory
        self.outcomes = outcomes
        self.clock = clock
        self.tolerance = tolerance

    def mount(self, app: web.Application) -> None:
        """A RouteHook for the HTTP listener's `extra_routes`."""
        app.router.add_post(ACK_PATH, self.handle_http)

    async def handle_http(self, request: web.Request) -> web.Response:
        body = await request.content.read(MAX_ACK_BYTES + 1)
        if len(body) > MAX_ACK_BYTES:
            return _error(413, "body too large")
        signature = request.headers.get(SIGNATURE_HEADER)
        timestamp = request.headers.get(TIMESTAMP_HEADER)
        now = self.clock()
        signers = {
            org.id
            for org, secrets in self.directory.signing_organizations()
            if verify(signature, timestamp, body, secrets, now=now, tolerance=self.tolerance)
        }
        if not signers:
            log.warning("referral ack refused status=401")
            return _error(401, "bad or stale signature")
        parsed = _parse(body)
        if isinstance(parsed, str):
            return _error(400, parsed)
        referral_id, accepted = parsed
        if is_test_id(referral_id):
            return web.json_response({"referral_id": referral_id, "status": "test", "test": True})
        referral = await self.outcomes.store.get_referral(referral_id)
        if referral is None or referral.org_id not in signers:
            return _error(404, "unknown referral")
        result = await self.outcomes.acknowledge(referral_id, accepted)
        if result.result == "unknown":
            return _error(404, "unknown referral")
        if result.result == "conflict":
            return _error(409, "the referral has already ended", status=result.status)
        log.info("referral ack answered referral=%s status=%s changed=%s", referral_id, result.status, result.changed)
        return web.json_response({"referral_id": referral_id, "status": result.status})

    async def staff_decision(self, referral_id: str, accepted: bool, *, user_id: int, chat_id: int | None) -> StaffAnswer:
        """A tap on Accept/Decline in a staff chat; only the organisation's `staff_ids`, in its `staff_chat_id`."""
        if is_test_id(referral_id):
            return StaffAnswer("test")
        referral = await self.outcomes.store.get_referral(referral_id)
        if referral is None:
            return StaffAnswer("unknown")
        org = self.directory.organization(referral.org_id)
        config = org.referral if org is not None else None
        if config is None or user_id not in config.staff_ids or (chat_id is not None and chat_id != config.staff_chat_id):
            log.warning("referral staff tap refused referral=%s reason=not_staff", referral_id)
            return StaffAnswer("not_allowed")
        result = await self.outcomes.acknowledge(referral_id, accepted, live=True)
        return StaffAnswer(result.result, result.status, result.changed)


def _parse(body: bytes) -> tuple[str, bool] | str:
    """(referral id, accepted) or the reason the body is malformed."""
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return "body is not JSON"
    if not isinstance(data, dict):
        return "body must be a JSON object"
    referral_id = data.get("referral_id")
    status = data.get("status")
    note = data.get("note")
    if not isinstance(referral_id, str) or not referral_id or len(referral_id) > MAX_ID_CHARS:
        return "referral_id must be a string"
    if status not in ACK_STATUSES:
        return "status must be 'accepted' or 'declined'"
    if note is not None and (not isinstance(note, str) or len(note) > MAX_NOTE_CHARS):
        return f"note must be a string of at most {MAX_NOTE_CHARS} characters"
    return referral_id, ACK_STATUSES[status]
