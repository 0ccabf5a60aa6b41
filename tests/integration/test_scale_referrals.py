"""Acceptance: the referral outbox on PostgreSQL with three worker processes, a flaky receiver and a kill.

1,000 consented referrals wait in one PostgreSQL schema. Three `ReferralWorker` processes (the bot's
own worker, `tests/integration/scale_referral_worker.py`) deliver them to a real, signature-checking
receiver on 127.0.0.1 that fails 30% of requests: 20% with 503 before doing anything, 10% with 500
after it stored the referral (the worst case: the sender cannot know it arrived). One worker is
SIGKILLed a third of the way through, while the receiver holds its answers: the killed worker has
referrals claimed and requests out, some of them already stored by the receiver.

Checked: every referral is delivered (status `delivered`, none lost, none dead), the receiver stored
each Idempotency-Key exactly once and every key is a referral id, every request was signed correctly,
and a referral already recorded as delivered was never sent again: a second 2xx for one key happens
only for a referral the killed worker had in flight (its 2xx was never recorded).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
import time
from pathlib import Path

from bot.store import ReferralRecord, SessionRecord, UserRecord
from bot.store.postgres import PostgresStore
from tests.integration.referrals_support import ORG_ID, SECRET, SECRET_ENV, Answer, Receiver, build_content_dir
from tests.integration.scale_support import PgSchema, pg_schema  # noqa: F401 (fixture)

REFERRALS = 1000
WORKERS = 3
KILL_AFTER = REFERRALS // 3
LEASE_S = 3.0


async def test_three_workers_deliver_1000_referrals_exactly_once_through_a_kill(pg_schema: PgSchema, tmp_path: Path):
    receiver = await Receiver(time.time, [SECRET]).start()
    rng = random.Random(7)

    def flaky(key: str | None) -> Answer:
        roll = rng.random()
        if roll < 0.20:
            return Answer(503, text="busy")
        if roll < 0.30:
            return Answer(500, text="stored, then failed", process_first=True)
        return Answer(200, text="ok")

    receiver.decide = flaky
    content = build_content_dir(tmp_path / "content", url=receiver.url)
    processes: list[asyncio.subprocess.Process] = []
    logs = [open(tmp_path / f"worker{n}.log", "wb") for n in range(WORKERS)]  # noqa: SIM115 - closed below
    try:
        # The outbox: one consented referral per person, written the way a turn writes it.
        ids: set[str] = set()
        async with PostgresStore(pg_schema.url) as store:
            now = time.time()
            for number in range(REFERRALS):
                key = f"user-{number:04d}"
                referral = ReferralRecord.new(key, ORG_ID, {"topic": "talk_to_someone", "risk": "high", "language": "en", "region": "US"}, now)
                ids.add(referral.id)
                await store.save_turn(UserRecord.new(key, now), SessionRecord(key, {}, now), [], [referral])

        env = {**os.environ, "HUBBOT_DB": pg_schema.url, "HUBBOT_CONTENT": str(content), SECRET_ENV: SECRET.decode(), "WORKER_LEASE_S": str(LEASE_S), "HUBBOT_LOG_LEVEL": "WARNING"}
        started = time.time()
        for number, log in enumerate(logs):
            processes.append(
                await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "tests.integration.scale_referral_worker", cwd=Path(__file__).resolve().parents[2],
                    env={**env, "WORKER_ID": f"worker-{number}"}, stdout=log, stderr=log,
                )
            )

        def delivered_keys() -> int:
            return len(receiver.processed)

        deadline = time.monotonic() + 60
        while delivered_keys() < KILL_AFTER:
            assert time.monotonic() < deadline, f"only {delivered_keys()} referrals arrived"
            assert all(p.returncode is None for p in processes), (tmp_path / "worker0.log").read_text()[-2000:]
            await asyncio.sleep(0.01)
        # Hold the receiver's answers for a moment: every worker now has requests out, some of them already
        # stored by the receiver, and worker-0 dies without hearing back.
        hold = receiver.hold = asyncio.Event()
        await asyncio.sleep(0.5)
        processes[0].send_signal(signal.SIGKILL)
        await processes[0].wait()
        killed_at = time.time()
        # What it held when it died: still claimed by it (nobody takes a claim over before its lease lapses).
        in_flight = await pg_schema.fetch("SELECT id FROM referrals WHERE status = 'delivering' AND claimed_by = 'worker-0'")
        cut = {row[0] for row in in_flight}
        receiver.hold = None
        hold.set()
        print(f"\nkilled worker-0 (SIGKILL) after {delivered_keys()} referrals arrived; it held {len(cut)} claimed")

        deadline = time.monotonic() + 120
        while True:
            [(left,)] = await pg_schema.fetch("SELECT COUNT(*) FROM referrals WHERE status <> 'delivered'")
            if left == 0:
                break
            assert time.monotonic() < deadline, f"{left} referrals never delivered"
            await asyncio.sleep(0.1)
        elapsed = time.time() - started
        await asyncio.sleep(LEASE_S + 0.5)  # anything still to come (a lapsed lease resent) would arrive now

        rows = await pg_schema.fetch("SELECT id, status, attempts FROM referrals")
        assert len(rows) == REFERRALS and {row[0] for row in rows} == ids
        assert {row[1] for row in rows} == {"delivered"}  # none lost, none dead
        assert all(request.verified for request in receiver.requests)  # every request signed correctly
        assert set(receiver.processed) == ids  # every referral arrived, under its own id ...
        assert set(receiver.processed.values()) == {1}  # ... and was stored once
        again = {key for key, count in receiver.successes.items() if count > 1}
        assert again <= cut, again - cut  # only the killed worker's unrecorded deliveries were sent again
        failures = sum(1 for r in receiver.requests if r.status >= 500)
        stored_then_failed = sum(1 for r in receiver.requests if r.status == 500)
        assert failures > 0.2 * REFERRALS  # the receiver really was that flaky
        assert cut and killed_at < time.time()
        print(
            f"{REFERRALS} referrals delivered by {WORKERS} workers (1 killed) in {elapsed:.1f} s = {REFERRALS / elapsed:.0f}/s; "
            f"{len(receiver.requests)} requests, {failures} answered 5xx ({stored_then_failed} after storing), "
            f"{sum(receiver.duplicates.values())} redeliveries of a stored key acknowledged without storing again, "
            f"{len(again)} sent again after a 2xx (all held by the killed worker)"
        )
        for number, process in enumerate(processes[1:], start=1):
            process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(process.wait(), 20) == 0, (tmp_path / f"worker{number}.log").read_text()[-2000:]
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()
        for log in logs:
            log.close()
        await receiver.stop()
