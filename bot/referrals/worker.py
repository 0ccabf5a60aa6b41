"""The outbox worker: claim due referrals, deliver them, record the outcome; retry, give up, chase acknowledgements.

One round (`run_once`):

1. `claim_referrals` takes due `pending`/`failed` referrals (and `delivering` ones whose lease ran out:
   their worker died) under this worker's lease.
2. Each is delivered through its organisation's channel, then recorded with `if_claimed_by`, so a worker
   whose lease was taken over cannot overwrite the newer outcome:
   - delivered -> `delivered`, with `next_attempt_at` = the acknowledgement deadline;
   - retryable -> `failed`, next attempt after exponential backoff with jitter (or Retry-After if longer);
   - refused (4xx) -> `failed` with the reason, next attempt after the longest delay, and the fallback
     channel is told at once (a refusal usually needs a human);
   - the last allowed attempt fails -> `dead`, the fallback channel is alerted (no identity) and the
     person is told kindly, with the crisis lines.
3. Delivered referrals past their deadline are ended: the person is told (`handoff_no_ack` and the crisis
   lines) and the fallback channel is alerted.

We never send a referral again once its delivery is recorded. If the process dies between the receiver's
2xx and that record, the lease runs out and another worker sends it again with the same
`Idempotency-Key`, which the receiver deduplicates on.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bot.content.models import Organization
from bot.referrals.channels import DeliveryResult, Outbound
from bot.referrals.directory import ReferralDirectory
from bot.referrals.outcomes import ReferralOutcomes
from bot.referrals.payload import AlertKind, alert_document, referral_document
from bot.store import ReferralRecord, Store

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[Any]]

MAX_ATTEMPTS = 6
BASE_DELAY_S = 30.0
MAX_DELAY_S = 600.0
LEASE_S = 120.0
BATCH = 20
POLL_INTERVAL_S = 2.0
CONCURRENCY = 8
STORE_RETRIES = 4
ALERT_ATTEMPTS = 3
SWEEP_LIMIT = 100
REJECTED = "rejected: "


def default_worker_id() -> str:
    """host:pid:random, unique per process start (a restarted process is a new worker)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclass
class WorkerReport:
    """What one round did (counts only)."""

    claimed: int = 0
    delivered: int = 0
    retrying: int = 0
    dead: int = 0
    expired: int = 0
    lost_claims: int = 0
    outcomes: dict[str, str] = field(default_factory=dict)  # referral id -> what happened this round


def _no_engine() -> Any:
    raise RuntimeError("no content to word a message to the person")


class ReferralWorker:
    """Delivers the referral outbox. `run_once()` for tests and tools, `run_forever(stop)` in the bot."""

    def __init__(
        self,
        store: Store,
        channels: ReferralDirectory,
        clock: Callable[[], float] = time.time,
        sleep: Sleep = asyncio.sleep,
        worker_id: str | None = None,
        *,
        max_attempts: int = MAX_ATTEMPTS,
        base_delay: float = BASE_DELAY_S,
        max_delay: float = MAX_DELAY_S,
        lease_seconds: float = LEASE_S,
        rng: random.Random | None = None,
        outcomes: ReferralOutcomes | None = None,
        batch_size: int = BATCH,
        poll_interval: float = POLL_INTERVAL_S,
        concurrency: int = CONCURRENCY,
    ) -> None:
        if max_attempts < 1 or base_delay <= 0 or max_delay < base_delay or lease_seconds <= 0:
            raise ValueError("ReferralWorker: need max_attempts >= 1, 0 < base_delay <= max_delay, lease_seconds > 0")
        self.store = store
        self.channels = channels
        self.clock = clock
        self.sleep = sleep
        self.worker_id = worker_id or default_worker_id()
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.lease_seconds = lease_seconds
        self.rng = rng or random.Random()
        self.outcomes = outcomes or ReferralOutcomes(store, _no_engine, None, clock=clock)
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.concurrency = max(1, concurrency)

    # --- the loop -----------------------------------------------------------------------------

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Rounds until `stop` is set; a failing round is logged and retried after the poll interval."""
        log.info("referral worker started worker=%s", self.worker_id)
        while not stop.is_set():
            report: WorkerReport | None = None
            try:
                report = await self.run_once()
            except Exception as error:  # noqa: BLE001 - the database may be down for a while; keep going
                log.error("referral round failed worker=%s error=%s", self.worker_id, type(error).__name__)
            if report is not None and report.claimed >= self.batch_size:
                await asyncio.sleep(0)  # more are waiting: next round at once
                continue
            await self._pause(stop)
        log.info("referral worker stopped worker=%s", self.worker_id)

    async def _pause(self, stop: asyncio.Event) -> None:
        napping = asyncio.ensure_future(self.sleep(self.poll_interval))
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({napping, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (napping, stopping):
                task.cancel()

    async def run_once(self) -> WorkerReport:
        """One round: claim and deliver what is due, then end what waited too long for an acknowledgement."""
        report = WorkerReport()
        claimed = await self.store.claim_referrals(self.clock(), self.batch_size, self.worker_id, self.lease_seconds)
        report.claimed = len(claimed)
        if claimed:
            gate = asyncio.Semaphore(self.concurrency)

            async def one(referral: ReferralRecord) -> str:
                async with gate:
                    return await self._deliver(referral)

            results = await asyncio.gather(*(one(r) for r in claimed), return_exceptions=True)
            for referral, result in zip(claimed, results):
                if isinstance(result, BaseException):
                    if isinstance(result, asyncio.CancelledError):
                        raise result
                    log.error("referral delivery crashed referral=%s error=%s", referral.id, type(result).__name__)
                    result = "error"
                report.outcomes[referral.id] = result
                if result == "delivered":
                    report.delivered += 1
                elif result == "retrying":
                    report.retrying += 1
                elif result == "dead":
                    report.dead += 1
                elif result == "lost":
                    report.lost_claims += 1
        report.expired = await self._chase_acknowledgements()
        return report

    # --- one delivery -------------------------------------------------------------------------

    def backoff(self, attempts: int) -> float:
        """Delay after the `attempts`-th failure: exponential, capped, with jitter in its upper half."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** max(0, attempts - 1)))
        return ceiling / 2 + self.rng.random() * ceiling / 2

    async def _deliver(self, referral: ReferralRecord) -> str:
        attempts = referral.attempts + 1
        org = self.channels.organization(referral.org_id)
        if org is None or org.referral is None:
            # The organisation left the content: nobody can receive it. The person must not wait for it.
            changed = await self.outcomes.give_up(
                referral, attempts=referral.attempts, reason="the organisation no longer takes referrals",
                worker_id=self.worker_id,
            )
            return "dead" if changed else "lost"
        result = await self._send(org, referral)
        now = self.clock()
        if result.delivered:
            deadline = now + org.referral.ack_within_minutes * 60.0
            recorded = await self._record(
                referral.id, status="delivered", attempts=attempts, next_attempt_at=deadline, last_error="", updated_at=now
            )
            log.info("referral delivered referral=%s org=%s attempts=%d recorded=%s", referral.id, org.id, attempts, recorded)
            return "delivered" if recorded else "lost"
        rejected = result.outcome == "failed"
        reason = f"{REJECTED}{result.reason}" if rejected else result.reason
        if attempts >= self.max_attempts:
            changed = await self.outcomes.give_up(referral, attempts=attempts, reason=reason, worker_id=self.worker_id)
            if changed:
                await self._alert(org, referral, "undeliverable")
            return "dead" if changed else "lost"
        delay = self.max_delay if rejected else self.backoff(attempts)
        if result.retry_after is not None:
            delay = max(delay, result.retry_after)
        recorded = await self._record(
            referral.id, status="failed", attempts=attempts, next_attempt_at=now + delay, last_error=reason, updated_at=now
        )
        log.warning(
            "referral attempt failed referral=%s org=%s attempts=%d retry_in=%.0fs outcome=%s reason=%s",
            referral.id, org.id, attempts, delay, result.outcome, result.reason,
        )
        if rejected and recorded and not (referral.last_error or "").startswith(REJECTED):
            await self._alert(org, referral, "rejected")
        return "retrying" if recorded else "lost"

    async def _send(self, org: Organization, referral: ReferralRecord) -> DeliveryResult:
        assert org.referral is not None
        channel = self.channels.primary(org)
        if channel is None:
            return DeliveryResult("failed", f"the '{org.referral.channel}' channel is not configured")
        document = referral_document(referral.id, org.id, referral.created_at, referral.payload, org.referral.fields)
        try:
            return await channel.deliver(Outbound(referral.id, document))
        except Exception as error:  # noqa: BLE001 - a channel bug is a failed attempt, not a crashed worker
            return DeliveryResult("retry", f"channel error: {type(error).__name__}")

    async def _record(self, referral_id: str, **fields: Any) -> bool:
        """update_referral under our claim; a store hiccup is retried so a delivered referral is not resent."""
        for attempt in range(STORE_RETRIES):
            try:
                changed = await self.store.update_referral(referral_id, if_claimed_by=self.worker_id, **fields)
            except Exception as error:  # noqa: BLE001
                log.error("referral record failed referral=%s error=%s try=%d", referral_id, type(error).__name__, attempt + 1)
                await self.sleep(0.5 * 2**attempt)
                continue
            if not changed:
                log.warning("referral claim lost referral=%s worker=%s (ended, forgotten or taken over)", referral_id, self.worker_id)
            return changed
        return False

    # --- acknowledgements and alerts ----------------------------------------------------------

    async def _chase_acknowledgements(self) -> int:
        """End delivered referrals whose acknowledgement deadline passed.

        The worker that delivered a referral ends it at its deadline; any other worker only after one
        more lease period (the first one is presumably gone), so two processes rarely race for it.
        """
        now = self.clock()
        due = await self.store.due_referrals(now, SWEEP_LIMIT, statuses=("delivered",))
        ended = 0
        for referral in due:
            if referral.claimed_by != self.worker_id and referral.next_attempt_at + self.lease_seconds > now:
                continue
            org = self.channels.organization(referral.org_id)
            minutes = org.referral.ack_within_minutes if org is not None and org.referral is not None else None
            reason = f"not acknowledged within {minutes} minutes" if minutes else "not acknowledged in time"
            if await self.outcomes.expire(referral, reason):
                ended += 1
                if org is not None:
                    await self._alert(org, referral, "not_acknowledged")
        return ended

    async def _alert(self, org: Organization, referral: ReferralRecord, kind: AlertKind) -> bool:
        """Tell the organisation's fallback channel: ids and times only, never who or what."""
        channel = self.channels.fallback(org)
        if channel is None:
            log.error("referral alert not sent referral=%s org=%s alert=%s reason=no_fallback", referral.id, org.id, kind)
            return False
        message = Outbound(f"alert:{kind}:{referral.id}", alert_document(referral.id, org.id, kind, self.clock()))
        result = DeliveryResult("retry", "not sent")
        for attempt in range(ALERT_ATTEMPTS):
            try:
                result = await channel.deliver(message)
            except Exception as error:  # noqa: BLE001
                result = DeliveryResult("retry", f"channel error: {type(error).__name__}")
            if result.outcome != "retry":
                break
            await self.sleep(min(self.base_delay, 2.0 ** attempt))
        if result.delivered:
            log.info("referral alert sent referral=%s org=%s alert=%s", referral.id, org.id, kind)
        else:
            log.error("referral alert failed referral=%s org=%s alert=%s reason=%s", referral.id, org.id, kind, result.reason)
        return result.delivered
