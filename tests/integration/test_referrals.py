"""Referrals end to end: consent -> outbox row -> signed delivery to a real receiver -> acknowledgement.

Real SQLite store in tmp_path, a real aiohttp receiver on 127.0.0.1, the real aiogram Bot against the
tests' Bot API server for the staff chat; an injected clock and sleep, so nothing waits for a backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import random
import sqlite3
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiogram import Dispatcher
from aiohttp import web

from bot.app import HubbotApp
from bot.reload import ContentHolder
from bot.engine import ButtonPress, Decision
from bot.engine.reply import plain_text
from bot.referrals.service import ReferralService, build_referral_service
from bot.referrals.signing import signature_header
from bot.referrals.staff import bot_staff_sender
from bot.settings import Settings
from bot.store import ReferralRecord, SessionRecord, SqliteStore, StoreError, UserRecord, referral_purpose
from tests.integration.referrals_support import (
    ORG_ID,
    ROOT,
    SECRET,
    SECRET_ENV,
    T0,
    Answer,
    Clock,
    Notifications,
    Receiver,
    Sleeps,
    build_content_dir,
    with_referral,
)

CHAT = 5151
STAFF_CHAT = -1001000000001
STAFF_ID = 100000001
NAME = "Example Crisis Partner"


# --- fixtures and helpers ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def content_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_content_dir(tmp_path_factory.mktemp("content"))


@pytest.fixture(scope="module")
def holder(content_dir: Path) -> ContentHolder:
    loaded = ContentHolder(content_dir)
    loaded.load()
    return loaded


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "bot.sqlite3"


@pytest.fixture
async def store(db: Path) -> AsyncIterator[SqliteStore]:
    async with SqliteStore(str(db)) as opened:
        yield opened  # type: ignore[misc]


@pytest.fixture
async def receiver(clock: Clock) -> AsyncIterator[Receiver]:
    started = await Receiver(clock, [SECRET]).start()
    yield started
    await started.stop()


@pytest.fixture
def notes() -> Notifications:
    return Notifications()


@pytest.fixture
def staff_chat(bot_api: Any) -> int:
    bot_api.add_chat(STAFF_CHAT, "supergroup", title="Example Crisis Partner staff")
    return STAFF_CHAT


def make_app(db: Path, holder: ContentHolder, store: SqliteStore, clock: Clock, content_dir: Path) -> HubbotApp:
    settings = Settings(HUBBOT_DB=str(db), HUBBOT_HASH_KEY="test-key", HUBBOT_CONTENT=str(content_dir))  # type: ignore[call-arg]
    return HubbotApp(settings, holder, store, clock=clock)


def make_service(
    store: SqliteStore,
    holder: ContentHolder,
    clock: Clock,
    notes: Notifications,
    receiver: Receiver | None = None,
    *,
    referral: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    staff_send: Any = None,
    worker_id: str = "worker-1",
    **options: Any,
) -> ReferralService:
    changes: dict[str, Any] = {"url": receiver.url} if receiver is not None else {}
    changes.update(referral or {})
    content = with_referral(holder.current.content, **changes)
    options.setdefault("rng", random.Random(7))
    options.setdefault("base_delay", 10.0)
    options.setdefault("max_delay", 160.0)
    options.setdefault("lease_seconds", 60.0)
    return build_referral_service(
        store,
        lambda: holder.current.engine,
        notify_person=notes,
        staff_send=staff_send,
        clock=clock,
        sleep=Sleeps(),
        env=env if env is not None else {SECRET_ENV: SECRET.decode()},
        worker_id=worker_id,
        content=lambda: content,
        **options,
    )


async def consent(app: HubbotApp, chat: int = CHAT) -> tuple[Decision, Decision, Decision]:
    """A crisis message, the hand-off offer, the consent screen, and 'yes, send it'."""
    crisis = await app.handle("telegram", chat, {"text": "i want to kill myself tonight"})
    offer = next(b for b in crisis.reply.buttons if b.action == "handoff")
    assert offer.value == ORG_ID
    screen = await app.handle("telegram", chat, {"button": ButtonPress("handoff", offer.value)})
    confirm = next(b for b in screen.reply.buttons if b.action == "handoff")
    queued = await app.handle("telegram", chat, {"button": ButtonPress("handoff", confirm.value)})
    return crisis, screen, queued


def rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(db)) as connection:
        return connection.execute(sql).fetchall()


async def only_referral(store: SqliteStore, db: Path) -> ReferralRecord:
    [(referral_id,)] = rows(db, "SELECT id FROM referrals")
    found = await store.get_referral(referral_id)
    assert found is not None
    return found


def reply_text(holder: ContentHolder, reply_id: str, language: str = "en", **values: str) -> str:
    text = holder.current.content.replies[reply_id][language]
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return plain_text(text)


# --- consent -> outbox --------------------------------------------------------------------------------


async def test_consent_queues_one_pending_referral_with_only_the_consented_fields(
    db: Path, holder: ContentHolder, store: SqliteStore, clock: Clock, content_dir: Path
) -> None:
    app = make_app(db, holder, store, clock, content_dir)
    await app.handle("telegram", CHAT, {"text": "i want to kill myself tonight"})
    screen = await app.handle("telegram", CHAT, {"button": ButtonPress("handoff", ORG_ID)})
    assert NAME in screen.reply.plain and "risk: imminent" in screen.reply.plain
    assert rows(db, "SELECT COUNT(*) FROM referrals") == [(0,)]  # nothing before 'yes'
    _, _, queued = await consent(app)
    assert reply_text(holder, "handoff_queued") in queued.reply.plain
    assert "988" in queued.reply.plain  # the crisis lines stay in front of them
    referral = await only_referral(store, db)
    assert (referral.org_id, referral.status, referral.attempts, referral.created_at) == (ORG_ID, "pending", 0, T0)
    assert referral.payload["risk"] == "imminent" and referral.payload["region"] == "US"
    assert set(referral.payload) <= {"topic", "risk", "language", "region"}
    assert rows(db, "SELECT purpose, chat_id FROM chat_refs") == [(referral_purpose(referral.id), CHAT)]


async def test_no_referral_is_saved_when_the_turns_event_cannot_be_written(
    db: Path, holder: ContentHolder, store: SqliteStore, clock: Clock, content_dir: Path
) -> None:
    app = make_app(db, holder, store, clock, content_dir)
    crisis = await app.handle("telegram", CHAT, {"text": "i want to kill myself tonight"})
    screen = await app.handle("telegram", CHAT, {"button": ButtonPress("handoff", ORG_ID)})
    confirm = next(b for b in screen.reply.buttons if b.action == "handoff")
    with contextlib.closing(sqlite3.connect(db)) as connection:
        connection.execute("CREATE TRIGGER events_down BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'events down'); END")
        connection.commit()
    queued = await app.handle("telegram", CHAT, {"button": ButtonPress("handoff", confirm.value)})
    assert "988" in queued.reply.plain  # the person is still answered
    assert rows(db, "SELECT COUNT(*) FROM referrals") == [(0,)]
    assert rows(db, "SELECT COUNT(*) FROM chat_refs") == [(0,)]
    with contextlib.closing(sqlite3.connect(db)) as connection:
        connection.execute("DROP TRIGGER events_down")
        connection.commit()
    await app.handle("telegram", CHAT, {"button": ButtonPress("handoff", confirm.value)})
    assert rows(db, "SELECT status FROM referrals") == [("pending",)]
    assert crisis.reply.plain


async def test_forget_cancels_a_pending_referral_and_drops_its_chat_ref(
    db: Path, holder: ContentHolder, store: SqliteStore, clock: Clock, content_dir: Path,
    receiver: Receiver, notes: Notifications,
) -> None:
    app = make_app(db, holder, store, clock, content_dir)
    await consent(app)
    assert rows(db, "SELECT COUNT(*) FROM referrals") == [(1,)]
    await app.handle("telegram", CHAT, {"command": "forget"})
    assert rows(db, "SELECT COUNT(*) FROM referrals") == [(0,)]
    assert rows(db, "SELECT COUNT(*) FROM chat_refs") == [(0,)]
    service = make_service(store, holder, clock, notes, receiver)
    report = await service.worker.run_once()
    await service.close()
    assert report.claimed == 0 and receiver.requests == [] and notes.sent == []


# --- delivery -----------------------------------------------------------------------------------------


async def test_a_2xx_marks_it_delivered_signed_keyed_and_never_sent_again(
    db: Path, holder: ContentHolder, store: SqliteStore, clock: Clock, content_dir: Path,
    receiver: Receiver, notes: Notifications,
) -> None:
    app = make_app(db, holder, store, clock, content_dir)
    await consent(app)
    clock.advance(3)
    service = make_service(store, holder, clock, notes, receiver)
    report = await service.worker.run_once()
    assert report.delivered == 1
    referral = await only_referral(store, db)
    [request] = receiver.requests
    assert request.verified and request.key == referral.id and request.timestamp == str(int(clock.now))
    assert request.signature == signature_header([SECRET], int(clock.now), request.body)
    assert json.loads(request.body) == {
        "version": 1,
        "type": "referral",
        "referral_id": referral.id,
        "org_id": ORG_ID,
        "created_at": "2026-01-01T10:00:00Z",
        "test": False,
        "person": referral.payload,
    }
    assert referral.user_key.encode() not in request.body and str(CHAT).encode() not in request.body
    assert (referral.status, referral.attempts) == ("delivered", 1)
    assert referral.next_attempt_at == clock.now + 30 * 60  # the acknowledgement deadline
    clock.advance(5)
    await service.worker.run_once()
    await service.close()
    assert len(receiver.requests) == 1 and receiver.successes[referral.id] == 1


async def test_a_rotating_secret_sends_both_signatures_and_the_old_one_still_verifies(
    db: Path, holder: ContentHolder, store: SqliteStore, clock: Clock, content_dir: Path,
    receiver: Receiver, notes: Notifications,
) -> None:
    await consent(make_app(db, holder, store, clock, content_dir))
    env = {SECRET_ENV: "brand-new-secret-abcdef, " + SECRET.decode()}
    service = make_service(store, holder, clock, notes, receiver, env=env)
    await service.worker.run_once()
    await service.close()
    [request] = receiver.requests
    assert request.verified and request.signature is not None and request.signature.count("v1=") == 2
    assert (await only_referral(store, db)).status == "delivered"


async def test_two_5xx_then_200_is_delivered_once_after_three_attempts_with_growing_delays(
    db: Path, holder: ContentHolder, store: SqliteStore, clock: Clock, content_dir: Path,
    receiver: Receiver, notes: Notifications,
) -> None:
    await consent(make_app(db, holder, store, clock, content_dir))
    receiver.script = [Answer(500), Answer(503), Answer(200)]
    service = make_service(store, holder, clock, notes, receiver, base_delay=10.0, max_delay=1000.0)
    delays = []
    for attempt in (1, 2):
        await service.worker.run_once()
        referral = await only_referral(store, db)
        assert (referral.status, referral.attempts) == ("failed", attempt)
        assert "HTTP 50" in (referral.last_error or "")
        delays.append(referral.next_attempt_at - clock.now)
        clock.now = referral.next_attempt_at - 0.5
        assert (await service.worker.run_once()).claimed == 0  # not due yet: nothing is sent early
        clock.now = referral.next_attempt_at
    await service.worker.run_once()
    await service.close()
    referral = await only_referral(store, db)
    assert (referral.status, referral.attempts, referral.last_error) == ("delivered", 3, "")
    assert 5.0 <= delays[0] <= 10.0 < delays[1] <= 20.0  # exponential, jitter in the upper half
    assert [r.status for r in receiver.requests] == [500, 503, 200]
    assert receiver.successes[referral.id] == 1 and len({r.key for r in receiver.requests}) == 1


async def test_a_4xx_is_failed_with_the_reason_and_the_fallback_is_told_once(
    db: Path, holder: ContentHolder, store: SqliteStore, clock: Clock, content_dir: Path,
    receiver: Receiver, notes: Notifications, bot_api: Any, api_bot: Any, staff_chat: int,
) -> None:
    await consent(make_app(db, holder, store, clock, content_dir))
    receiver.script = [Answer(400, text='{"error": "unknown field region"}'), Answer(422, text="still no")]
    service = make_service(store, holder, clock, notes, receiver, staff_send=bot_staff_sender(api_bot), max_delay=160.0)
    await service.worker.run_once()
    referral = await only_referral(store, db)
    assert (referral.status, referral.attempts) == ("failed", 1)
    assert referral.last_error is not None and referral.last_error.startswith("rejected: HTTP 400")
    assert "unknown field region" in referral.last_error
    assert referral.next_attempt_at == clock.now + 160.0  # a refusal waits the longest delay
    [alert] = bot_api.sent_to(staff_chat)
    assert referral.id in alert["text"] and "refused" in alert["text"]
    assert "imminent" not in alert["text"] and referral.user_key not in alert["text"]
    clock.now = referral.next_attempt_at
    await service.worker.run_once()
    await service.close()
    assert (await only_referral(store, db)).attempts == 2
    assert len(bot_api.sent_to(staff_chat)) == 1  # not alerted again for the same refusal


async def test_always_5xx_goes_dead_after_max_attempts_alerts_the_fallback_and_tells_the_person(
    db: Path, holder: ContentHolder, store: SqliteStore, clock: Clock, content_dir: Path,
    receiver: Receiver, notes: Notifications, bot_api: Any, api_bot: Any, staff_chat: int,
) -> None:
    await consent(make_app(db, holder, store, clock, content_dir))
    receiver.decide = lambda key: Answer(500, text="down")
    service = make_service(store, holder, clock, notes, receiver, staff_send=bot_staff_sender(api_bot), max_attempts=3)
    for _ in range(3):
        await service.worker.run_once()
        referral = await only_referral(store, db)
        if referral.status == "failed":
            clock.now = referral.next_attempt_at
    referral = await only_referral(store, db)
    assert (referral.status, referral.attempts) == ("dead", 3) and "HTTP 500" in (referral.last_error or "")
    [alert] = bot_api.sent_to(staff_chat)
    assert referral.id in alert["text"] and "could not deliver" in alert["text"]
    assert referral.user_key not in alert["text"] and str(CHAT) not in alert["text"]
    [(user_key, chat_id, reply)] = notes.sent
    assert (user_key, chat_id) == (referral.user_key, CHAT)
    assert reply_text(holder, "handoff_no_ack", name=NAME) in reply.plain and "988" in reply.plain
    assert rows(db, "SELECT COUNT(*) FROM chat_refs") == [(0,)]
    clock.advance(10_000)
    await service.worker.run_once()
    await service.close()
    assert len(receiver.requests) == 3 and len(notes.sent) == 1


async def test_429_retry_after_is_honoured_even_beyond_the_backoff(
    db: Path, holder: ContentHolder, store: SqliteStore, clock: Clock, content_dir: Path,
    receiver: Receiver, notes: Notifications,
) -> None:
    await consent(make_app(db, holder, store, clock, content_dir))
    receiver.script = [Answer(429, headers={"Retry-After": "120"}), Answer(200)]
    service = make_service(store, holder, clock, notes, receiver, base_delay=1.0, max_delay=8.0)
    await service.worker.run_once()
    referral = await only_referral(store, db)
    assert referral.status == "failed" and referral.next_attempt_at == clock.now + 120.0
    clock.advance(119)
    await service.worker.run_once()
    assert len(receiver.requests) == 1
    clock.advance(1)
    await service.worker.run_once()
    await service.close()
    assert (await only_referral(store, db)).status == "delivered" and len(receiver.requests) == 2


async def test_a_worker_killed_mid_delivery_loses_its_lease_and_another_delivers_under_the_same_key(
    db: Path, holder: ContentHolder, store: SqliteStore, clock: Clock, content_dir: Path,
    receiver: Receiver, notes: Notifications,
) -> None:
    await consent(make_app(db, holder, store, clock, content_dir))
    receiver.hold = asyncio.Event()  # the receiver stores it, but its 200 never reaches worker a
    first = make_service(store, holder, clock, notes, receiver, worker_id="worker-a", lease_seconds=60.0)
    second = make_service(store, holder, clock, notes, receiver, worker_id="worker-b", lease_seconds=60.0)
    task = asyncio.create_task(first.worker.run_once())
    await asyncio.wait_for(receiver.arrived.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    held = await only_referral(store, db)
    assert (held.status, held.claimed_by, held.attempts) == ("delivering", "worker-a", 0)
    receiver.hold.set()
    receiver.hold = None
    assert (await second.worker.run_once()).claimed == 0  # the lease still runs
    clock.advance(60)
    report = await second.worker.run_once()
    await first.close()
    await second.close()
    referral = await only_referral(store, db)
    assert report.delivered == 1
    assert (referral.status, referral.claimed_by, referral.attempts) == ("delivered", "worker-b", 1)
    assert [r.key for r in receiver.requests] == [referral.id, referral.id]
    assert receiver.processed[referral.id] == 1 and receiver.duplicates[referral.id] == 1


async def test_three_workers_deliver_200_referrals_exactly_once_per_key_through_a_flaky_receiver(
    db: Path, holder: ContentHolder, clock: Clock, receiver: Receiver, notes: Notifications
) -> None:
    stores = [SqliteStore(str(db)) for _ in range(3)]
    for each in stores:
        await each.open()
    ids: list[str] = []
    for user in range(20):
        key = f"user-{user:02d}"
        batch = [ReferralRecord(f"r-{user:02d}-{n}", key, ORG_ID, "pending", {"risk": "high", "region": "US"}, 0, T0, T0, T0)
                 for n in range(10)]
        ids.extend(r.id for r in batch)
        await stores[0].save_turn(UserRecord.new(key, T0), SessionRecord(key, {}, T0), [], batch,
                                  chat_refs={referral_purpose(r.id): 1000 + user for r in batch})
    luck = random.Random(1234)

    def flaky(key: str | None) -> Answer:
        roll = luck.random()
        if roll < 0.15:
            return Answer(500)
        if roll < 0.30:
            return Answer(503, process_first=True)  # stored it, then failed before answering
        return Answer(200)

    receiver.decide = flaky
    services = [
        make_service(stores[i], holder, clock, notes, receiver, worker_id=f"worker-{i}", max_attempts=40,
                     base_delay=1.0, max_delay=4.0, batch_size=15, referral={"ack_within_minutes": 100_000})
        for i in range(3)
    ]
    for _ in range(400):
        reports = await asyncio.gather(*(s.worker.run_once() for s in services))
        if rows(db, "SELECT COUNT(*) FROM referrals WHERE status != 'delivered'") == [(0,)]:
            break
        if not any(r.claimed for r in reports):
            clock.advance(4.0)
    for service, each in zip(services, stores):
        await service.close()
        await each.close()
    assert rows(db, "SELECT status, COUNT(*) FROM referrals GROUP BY status") == [("delivered", 200)]
    assert set(receiver.processed) == set(ids) and all(receiver.processed[i] == 1 for i in ids)
    assert all(receiver.successes[i] == 1 for i in ids)  # once a 2xx is recorded, never sent again
    assert sum(1 for r in receiver.requests if r.status >= 500) > 20  # the receiver really was flaky
    assert sum(receiver.duplicates.values()) > 0  # and the stored-then-failed ones were deduplicated on the key
    assert all(r.verified for r in receiver.requests)
    assert len({row[0] for row in rows(db, "SELECT claimed_by FROM referrals")}) == 3  # all three worked


async def test_run_forever_survives_a_failing_round_delivers_and_stops_when_told(
    db: Path, holder: ContentHolder, store: SqliteStore, clock: Clock, content_dir: Path,
    receiver: Receiver, notes: Notifications, monkeypatch: pytest.MonkeyPatch,
) -> None:
    await consent(make_app(db, holder, store, clock, content_dir))
    service = make_service(store, holder, clock, notes, receiver)
    real_claim = store.claim_referrals
    calls = {"n": 0}

    async def flaky_claim(*args: Any, **kwargs: Any) -> list[ReferralRecord]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise StoreError("database is locked")
        return await real_claim(*args, **kwargs)

    monkeypatch.setattr(store, "claim_referrals", flaky_claim)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    for _ in range(500):
        if (await only_referral(store, db)).status == "delivered":
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert calls["n"] >= 2 and (await only_referral(store, db)).status == "delivered"
    assert len(receiver.requests) == 1
    assert service.worker.sleep.calls and set(service.worker.sleep.calls) == {service.worker.poll_interval}  # type: ignore[attr-defined]


async def test_a_referral_to_an_organisation_that_left_the_content_ends_and_the_person_is_told(
    db: Path, holder: ContentHolder, store: SqliteStore, clock: Clock, content_dir: Path,
    receiver: Receiver, notes: Notifications,
) -> None:
    await consent(make_app(db, holder, store, clock, content_dir))
    service = make_service(store, holder, clock, notes, receiver)
    gone = dataclasses.replace(holder.current.content, resources=holder.current.content.resources.model_copy(
        update={"organizations": [o for o in holder.current.content.resources.organizations if o.id != ORG_ID]}))
    service.directory._content = lambda: gone  # the maintainer removed the organisation
    await service.worker.run_once()
    await service.close()
    referral = await only_referral(store, db)
    assert referral.status == "dead" and "no longer takes referrals" in (referral.last_error or "")
    assert receiver.requests == [] and [chat for _, chat, _ in notes.sent] == [CHAT]
    assert "988" in notes.sent[0][2].plain


# --- acknowledgements ---------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def serving(service: ReferralService) -> AsyncIterator[str]:
    app = web.Application()
    service.mount(app)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/referrals/ack"
    finally:
        await runner.cleanup()


async def post_ack(
    url: str, document: Any, *, now: float, secret: bytes = SECRET, timestamp: float | None = None, raw: bytes | None = None
) -> tuple[int, dict[str, Any]]:
    body = raw if raw is not None else json.dumps(document).encode()
    stamp = int(now if timestamp is None else timestamp)
    headers = {
        "Content-Type": "application/json",
        "X-Hubbot-Timestamp": str(stamp),
        "X-Hubbot-Signature": signature_header([secret], stamp, body),
    }
    async with aiohttp.ClientSession() as session, session.post(url, data=body, headers=headers) as response:
        return response.status, await response.json()


async def test_the_ack_endpoint_accepts_declines_refuses_bad_signatures_and_unknown_ids(
    db: Path, holder: ContentHolder, store: SqliteStore, clock: Clock, content_dir: Path,
    receiver: Receiver, notes: Notifications,
) -> None:
    app = make_app(db, holder, store, clock, content_dir)
    await consent(app, CHAT)
    await consent(app, CHAT + 1)
    service = make_service(store, holder, clock, notes, receiver)
    assert (await service.worker.run_once()).delivered == 2
    by_chat = {chat: rid for rid, chat in rows(db, "SELECT substr(purpose, 10), chat_id FROM chat_refs")}
    first, second = by_chat[CHAT], by_chat[CHAT + 1]
    accept = {"referral_id": first, "status": "accepted", "note": "we will call back"}
    async with serving(service) as url:
        assert (await post_ack(url, accept, now=clock.now, secret=b"not-the-secret"))[0] == 401
        assert (await post_ack(url, accept, now=clock.now, timestamp=clock.now - 301))[0] == 401
        assert (await post_ack(url, accept, now=clock.now, timestamp=clock.now + 301))[0] == 401
        assert (await store.get_referral(first)).status == "delivered"  # type: ignore[union-attr]
        assert (await post_ack(url, {**accept, "referral_id": "no-such-referral"}, now=clock.now))[0] == 404
        assert (await post_ack(url, {**accept, "status": "maybe"}, now=clock.now))[0] == 400
        assert (await post_ack(url, None, now=clock.now, raw=b"{not json"))[0] == 400
        assert notes.sent == []

        assert await post_ack(url, accept, now=clock.now) == (200, {"referral_id": first, "status": "acknowledged"})
        assert await post_ack(url, accept, now=clock.now) == (200, {"referral_id": first, "status": "acknowledged"})
        status, body = await post_ack(url, {"referral_id": first, "status": "declined"}, now=clock.now)
        assert (status, body["status"]) == (409, "acknowledged")
        assert await post_ack(url, {"referral_id": second, "status": "declined"}, now=clock.now) == (
            200, {"referral_id": second, "status": "declined"})
        test_id = "test-00000000-0000-4000-8000-000000000000"
        assert (await post_ack(url, {"referral_id": test_id, "status": "accepted"}, now=clock.now))[1]["status"] == "test"
    await service.close()
    assert [(await store.get_referral(r)).status for r in (first, second)] == ["acknowledged", "declined"]  # type: ignore[union-attr]
    assert [chat for _, chat, _ in notes.sent] == [CHAT, CHAT + 1]  # each person told once
    accepted, declined = notes.sent[0][2].plain, notes.sent[1][2].plain
    next_step = holder.current.content.resources.organizations[-1].referral.next_step["en"]  # type: ignore[union-attr]
    assert reply_text(holder, "handoff_acknowledged", name=NAME) in accepted and next_step in accepted
    assert "we will call back" not in accepted
    assert reply_text(holder, "handoff_org_declined", name=NAME) in declined and "988" in declined
    assert rows(db, "SELECT COUNT(*) FROM chat_refs") == [(0,)]


async def test_no_acknowledgement_in_time_tells_the_person_and_alerts_the_fallback(
    db: Path, holder: ContentHolder, store: SqliteStore, clock: Clock, content_dir: Path,
    receiver: Receiver, notes: Notifications, bot_api: Any, api_bot: Any, staff_chat: int,
) -> None:
    await consent(make_app(db, holder, store, clock, content_dir))
    service = make_service(store, holder, clock, notes, receiver, staff_send=bot_staff_sender(api_bot))
    other = make_service(store, holder, clock, notes, receiver, worker_id="worker-2", staff_send=bot_staff_sender(api_bot))
    await service.worker.run_once()
    clock.advance(30 * 60 - 1)
    assert (await service.worker.run_once()).expired == 0
    assert notes.sent == [] and (await only_referral(store, db)).status == "delivered"
    clock.advance(2)
    assert (await other.worker.run_once()).expired == 0  # not its delivery: it waits one more lease
    assert (await service.worker.run_once()).expired == 1
    referral = await only_referral(store, db)
    assert (referral.status, referral.last_error) == ("dead", "not acknowledged within 30 minutes")
    [(_, chat_id, reply)] = notes.sent
    assert chat_id == CHAT
    assert reply_text(holder, "handoff_no_ack", name=NAME) in reply.plain and "988" in reply.plain
    assert rows(db, "SELECT COUNT(*) FROM chat_refs") == [(0,)]
    [alert] = bot_api.sent_to(staff_chat)
    assert referral.id in alert["text"] and "not acknowledged" in alert["text"]
    async with serving(service) as url:
        status, body = await post_ack(url, {"referral_id": referral.id, "status": "accepted"}, now=clock.now)
    assert (status, body["status"]) == (409, "dead")  # a late answer does not reach the person twice
    await service.worker.run_once()
    await service.close()
    await other.close()
    assert len(notes.sent) == 1


async def test_a_staff_chat_gets_the_consented_fields_and_only_staff_can_accept(
    db: Path, holder: ContentHolder, store: SqliteStore, clock: Clock, content_dir: Path,
    notes: Notifications, bot_api: Any, api_bot: Any, staff_chat: int,
) -> None:
    await consent(make_app(db, holder, store, clock, content_dir))
    service = make_service(store, holder, clock, notes, staff_send=bot_staff_sender(api_bot),
                           referral={"channel": "telegram", "fallback": None, "staff_ids": [STAFF_ID]})
    assert (await service.worker.run_once()).delivered == 1
    referral = await only_referral(store, db)
    [message] = bot_api.sent_to(staff_chat)
    assert referral.id in message["text"] and "risk: imminent" in message["text"]
    assert referral.user_key not in message["text"] and str(CHAT) not in message["text"]
    [buttons] = message["reply_markup"]["inline_keyboard"]
    accept = buttons[0]["callback_data"]
    assert all(len(b["callback_data"].encode()) <= 64 for b in buttons)
    dispatcher = Dispatcher()
    dispatcher.include_router(service.staff_router())

    await dispatcher.feed_raw_update(api_bot, bot_api.make_callback_update(staff_chat, accept, message["message_id"], user_id=999))
    assert (await only_referral(store, db)).status == "delivered" and notes.sent == []
    assert bot_api.callback_answers[-1]["show_alert"] is True

    await dispatcher.feed_raw_update(api_bot, bot_api.make_callback_update(staff_chat, accept, message["message_id"], user_id=STAFF_ID))
    await service.close()
    assert (await only_referral(store, db)).status == "acknowledged"
    [(_, chat_id, reply)] = notes.sent
    assert chat_id == CHAT and reply_text(holder, "handoff_acknowledged", name=NAME) in reply.plain
    edits = bot_api.calls_to("editMessageText")
    assert edits and "Accepted" in bot_api.sent_to(staff_chat)[-1]["text"]


# --- the command line ---------------------------------------------------------------------------------


async def run_cli(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", *args, cwd=str(ROOT), env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return int(process.returncode or 0), out.decode(), err.decode()


async def test_cli_sends_a_test_referral_and_lists_counts_without_personal_data(
    tmp_path: Path, db: Path, store: SqliteStore
) -> None:
    live = await Receiver(time.time, [SECRET]).start()  # the CLI signs with the real clock
    try:
        content = build_content_dir(tmp_path / "content", url=live.url)
        env = {SECRET_ENV: SECRET.decode(), "HUBBOT_DB": str(db), "HUBBOT_CONTENT": str(content)}
        code, out, err = await run_cli("referrals", "test", ORG_ID, env=env)
        assert code == 0, err
        [request] = live.requests
        document = json.loads(request.body)
        assert request.verified and document["test"] is True and request.key == document["referral_id"]
        assert document["referral_id"].startswith("test-") and f"delivered: test referral {document['referral_id']}" in out
        assert set(document["person"]) == {"topic", "risk", "language", "region"}
        live.script = [Answer(400, text="nope")]
        code, out, _ = await run_cli("referrals", "test", ORG_ID, env=env)
        assert code == 1 and "refused" in out and "HTTP 400" in out
        assert (await run_cli("referrals", "test", "988-lifeline", env=env))[0] == 2
    finally:
        await live.stop()
    key = "user-cli"
    await store.save_turn(UserRecord.new(key, T0), SessionRecord(key, {}, T0), [],
                          [ReferralRecord("r-1", key, ORG_ID, "pending", {"risk": "high"}, 0, T0, T0, T0),
                           ReferralRecord("r-2", key, ORG_ID, "dead", {"risk": "high"}, 3, T0, T0, T0)])
    code, out, err = await run_cli("referrals", "list", env={"HUBBOT_DB": str(db), "HUBBOT_CONTENT": str(content)})
    assert code == 0, err
    lines = dict(line.split(maxsplit=1) for line in out.splitlines() if not line.startswith("organisation"))
    assert (lines["pending"], lines["dead"], lines["delivered"], lines["total"]) == ("1", "1", "0", "2")
    assert key not in out and "high" not in out
    assert f"organisation {ORG_ID}: webhook, fallback telegram" in out
