"""Both stores against real databases (a SQLite file, a PostgreSQL schema): round trips, atomic turns,
forgetting, retention, stats, the outbox and its claims across workers."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import sqlite3
from pathlib import Path

import pytest

from bot.store import (
    ConflictError,
    EventRecord,
    ReferralRecord,
    SessionRecord,
    SqliteStore,
    Store,
    StoreError,
    UserRecord,
    referral_purpose,
)
from bot.store import records
from bot.store.migrations import USER_TABLES
from tests.unit.store_support import Backend, backend, store  # noqa: F401  (pytest fixtures)

KEY_A = "a" * 64
KEY_B = "b" * 64
CHAT_A = 111_222_333
CHAT_B = 444_555_666
T0 = 1_700_000_000.0


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """The file of a SQLite-only test (one that inspects the file itself)."""
    return tmp_path / "hub.sqlite3"


def user(key: str, now: float = T0, **changes: object) -> UserRecord:
    base = UserRecord(key, "en", "US", {"share_region": True}, T0, now, True)
    return dataclasses.replace(base, **changes)


def session(key: str, now: float = T0, **state: object) -> SessionRecord:
    return SessionRecord(key, {"turn": 1, "crisis_until": None, **state}, now)


def event(key: str, at: float = T0, *, intent: str | None = "anxiety", risk: str = "none", rule: str | None = None) -> EventRecord:
    return EventRecord(key, at, "message", intent, risk, rule, ("video-breathing", "line-988"))


def referral(key: str, id_: str, *, status: str = "pending", due: float = T0, created: float = T0,
             updated: float | None = None, payload: dict[str, object] | None = None) -> ReferralRecord:
    return ReferralRecord(id_, key, "example-org", status, payload or {"region": "US"}, 0, due, created,
                          created if updated is None else updated)


def rows_mentioning(rows: list[tuple[object, ...]], *needles: object) -> list[tuple[object, ...]]:
    return [row for row in rows if any(cell == n or (isinstance(cell, str) and str(n) in cell)
                                       for cell in row for n in needles)]


async def test_save_turn_then_load_round_trips(store: Store) -> None:
    u = user(KEY_A, language="es", region="MX", consent={"referral": True, "share_region": False})
    s = session(KEY_A, topics=["anxiety", "sleep"], counts={"concern": 2})
    ref = referral(KEY_A, "r-1", payload={"region": "MX", "language": "es"})
    await store.save_turn(u, s, [event(KEY_A)], [ref], chat_refs={referral_purpose("r-1"): CHAT_A})

    loaded_user, loaded_session = await store.load(KEY_A)
    assert loaded_user == u
    assert loaded_session == s
    assert await store.get_referral("r-1") == ref
    assert await store.get_chat_ref(KEY_A, referral_purpose("r-1")) == CHAT_A

    # A second turn updates the user and session in place; created_at stays the first one.
    later = dataclasses.replace(u, created_at=T0 + 999, last_seen=T0 + 60, region="ES")
    await store.save_turn(later, session(KEY_A, T0 + 60, turn=2), [event(KEY_A, T0 + 60)], [])
    loaded_user, loaded_session = await store.load(KEY_A)
    assert loaded_user == dataclasses.replace(later, created_at=T0)
    assert loaded_session is not None and loaded_session.state["turn"] == 2
    assert (await store.stats(0)).events == 2


async def test_load_unknown_user_gives_nothing(store: Store) -> None:
    assert await store.load(KEY_B) == (None, None)


async def test_save_turn_is_one_transaction(store: Store, backend: Backend) -> None:
    await store.save_turn(user(KEY_A), session(KEY_A), [event(KEY_A)], [referral(KEY_A, "dup")])
    before = await backend.raw_rows()

    # A new user whose turn carries a referral id that already exists: nothing of the turn lands.
    with pytest.raises(ConflictError):
        await store.save_turn(user(KEY_B), session(KEY_B), [event(KEY_B), event(KEY_B)],
                              [referral(KEY_B, "fresh"), referral(KEY_B, "dup")],
                              chat_refs={"reminder": CHAT_B})
    assert await store.load(KEY_B) == (None, None)
    # An existing user's later turn: their session, events and new chat ref stay as they were.
    with pytest.raises(ConflictError) as excinfo:
        await store.save_turn(user(KEY_A, T0 + 5, region="ES"), session(KEY_A, T0 + 5, turn=2),
                              [event(KEY_A, T0 + 5)], [referral(KEY_A, "dup")], chat_refs={"reminder": CHAT_A})
    assert await backend.raw_rows() == before
    # The error names what clashed, never the values (PostgreSQL's DETAIL quotes the key).
    assert "referrals" in str(excinfo.value) and "(dup)" not in str(excinfo.value)

    # The connection is not left inside the failed transaction.
    await store.save_turn(user(KEY_B), session(KEY_B), [event(KEY_B)], [])
    assert (await store.load(KEY_B))[0] is not None


async def test_save_turn_refuses_records_about_someone_else(store: Store) -> None:
    with pytest.raises(ValueError):
        await store.save_turn(user(KEY_A), session(KEY_A), [event(KEY_A), event(KEY_B)], [])
    with pytest.raises(ValueError):
        await store.save_turn(user(KEY_A), session(KEY_B), [], [])
    assert await store.load(KEY_A) == (None, None)


async def test_forget_deletes_every_row_about_the_user_and_only_theirs(store: Store, backend: Backend) -> None:
    for key, chat in ((KEY_A, CHAT_A), (KEY_B, CHAT_B)):
        for turn in range(3):
            await store.save_turn(user(key, T0 + turn), session(key, T0 + turn, turn=turn),
                                  [event(key, T0 + turn, risk="high", rule="crisis")],
                                  [referral(key, f"{key[0]}-{turn}")],
                                  chat_refs={referral_purpose(f"{key[0]}-{turn}"): chat})
        await store.set_chat_ref(key, "reminder", chat)
    await store.update_referral(f"{KEY_A[0]}-0", status="delivered", updated_at=T0 + 9)

    tables_before = await backend.raw_rows()  # every table the catalogue lists, so a new one is covered too
    expected = sum(len(rows_mentioning(rows, KEY_A)) for rows in tables_before.values())
    assert expected >= 1 + 1 + 3 + 3 + 4  # user, session, events, referrals, chat refs

    assert await store.forget(KEY_A) == expected

    tables_after = await backend.raw_rows()
    assert set(tables_after) == set(tables_before)
    for table, rows in tables_after.items():
        assert rows_mentioning(rows, KEY_A, CHAT_A) == [], f"{table} still holds the forgotten user"
        assert rows_mentioning(rows, KEY_B) == rows_mentioning(tables_before[table], KEY_B), f"{table} lost user B"
    assert await store.load(KEY_A) == (None, None)
    assert await store.get_referral(f"{KEY_A[0]}-1") is None
    assert await store.get_chat_ref(KEY_A, "reminder") is None
    assert await store.get_chat_ref(KEY_B, "reminder") == CHAT_B
    # The outbox worker learns the referral is gone instead of resurrecting it.
    assert await store.update_referral(f"{KEY_A[0]}-1", status="delivered", updated_at=T0 + 10) is False
    assert await store.forget(KEY_A) == 0


async def test_every_table_with_a_user_key_is_forgotten(backend: Backend, store: Store) -> None:
    with_user_key = {table for table, column in await backend.columns() if column == "user_key"}
    assert with_user_key == set(USER_TABLES)


async def test_forgotten_rows_are_not_left_in_the_file(db_path: Path) -> None:
    # SQLite only: secure_delete zeroes the freed pages. PostgreSQL keeps dead rows until VACUUM (see postgres.py).
    marker = "zq-forget-me-7f3c"  # only in a consented referral payload, which forget must erase
    async with SqliteStore(db_path) as store:
        await store.save_turn(user(KEY_A), session(KEY_A), [], [referral(KEY_A, "r", payload={"name": marker})])
        await store.save_turn(user(KEY_B), session(KEY_B), [], [])

    def file_bytes() -> bytes:
        return b"".join(p.read_bytes() for p in db_path.parent.glob(db_path.name + "*"))

    assert marker.encode() in file_bytes()
    async with SqliteStore(db_path) as store:
        await store.forget(KEY_A)
    assert marker.encode() not in file_bytes()
    assert KEY_A.encode() not in file_bytes()


def test_records_have_no_place_for_message_text() -> None:
    with pytest.raises(TypeError):
        EventRecord(KEY_A, T0, "message", None, "none", None, (), text="I feel awful")  # type: ignore[call-arg]
    texty = {"text", "message", "body", "content", "raw", "caption"}
    for record in (records.UserRecord, records.SessionRecord, records.EventRecord, records.ReferralRecord, records.Stats):
        assert not texty & {f.name for f in dataclasses.fields(record)}, record.__name__


async def test_no_column_can_hold_message_text(store: Store, backend: Backend) -> None:
    texty = {"text", "message", "body", "content", "raw", "caption"}
    columns = await backend.columns()
    assert ("users", "user_key") in columns and not [c for c in columns if c[1] in texty]


async def test_purge_events_respects_the_cutoff(store: Store, backend: Backend) -> None:
    await store.save_turn(user(KEY_A), session(KEY_A), [event(KEY_A, at) for at in (100.0, 199.9, 200.0, 300.0)], [])
    assert await store.purge_events(200.0) == 2
    assert sorted(at for (at,) in await backend.fetch("SELECT at FROM events")) == [200.0, 300.0]
    assert await store.purge_events(200.0) == 0
    assert (await store.load(KEY_A))[0] is not None  # purging events leaves the user


async def test_purge_referrals_only_removes_finished_ones(store: Store) -> None:
    rows = [referral(KEY_A, f"old-{s}", status=s, updated=100.0) for s in records.REFERRAL_STATUSES]
    rows.append(referral(KEY_A, "new-acknowledged", status="acknowledged", updated=500.0))
    refs = {referral_purpose(r.id): CHAT_A for r in rows}
    await store.save_turn(user(KEY_A), session(KEY_A), [], rows, chat_refs=refs)

    assert await store.purge_referrals(200.0) == len(records.FINISHED_REFERRAL_STATUSES)
    for status in records.REFERRAL_STATUSES:
        kept = await store.get_referral(f"old-{status}")
        assert (kept is None) == (status in records.FINISHED_REFERRAL_STATUSES), status
        # A purged referral's chat id goes with it; an unfinished one keeps it.
        chat = await store.get_chat_ref(KEY_A, referral_purpose(f"old-{status}"))
        assert (chat is None) == (status in records.FINISHED_REFERRAL_STATUSES), status
    assert await store.get_referral("new-acknowledged") is not None


async def test_stats_count_intents_risks_and_rules_since_a_time(store: Store) -> None:
    await store.save_turn(user(KEY_A), session(KEY_A), [
        event(KEY_A, 50.0, intent="anxiety", risk="none"),  # before the period
        event(KEY_A, 100.0, intent="anxiety", risk="none"),
        event(KEY_A, 110.0, intent="anxiety", risk="concern", rule="repeated-concern"),
        event(KEY_A, 120.0, intent=None, risk="high", rule="crisis"),
    ], [referral(KEY_A, "r1", created=100.0), referral(KEY_A, "r0", created=10.0)])
    await store.save_turn(user(KEY_B), session(KEY_B), [
        event(KEY_B, 130.0, intent="sleep", risk="imminent", rule="crisis"),
    ], [])

    stats = await store.stats(100.0)
    assert stats.since == 100.0
    assert stats.events == 4
    assert stats.users == 2
    assert stats.by_kind == {"message": 4}
    assert stats.by_intent == {"anxiety": 2, "sleep": 1}
    assert stats.no_intent == 1
    assert stats.by_risk == {"none": 1, "concern": 1, "high": 1, "imminent": 1}
    assert stats.by_rule == {"repeated-concern": 1, "crisis": 2}
    assert stats.referrals_by_status == {"pending": 1}
    assert (await store.stats(1000.0)).events == 0


async def test_sqlite_runs_in_wal_mode(db_path: Path) -> None:
    async with SqliteStore(db_path):
        with sqlite3.connect(db_path) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_foreign_keys_are_enforced(store: Store) -> None:
    # A raw chat id cannot be kept for someone the store does not know, directly or within a turn.
    with pytest.raises(ConflictError):
        await store.set_chat_ref(KEY_B, "reminder", CHAT_B)
    assert await store.get_chat_ref(KEY_B, "reminder") is None


async def test_chat_ids_of_any_telegram_size_round_trip(store: Store) -> None:
    # Telegram ids exceed 32 bits (supergroups are -100...); PostgreSQL's INTEGER would overflow.
    big = {"group": -1_001_234_567_890, "user": 8_123_456_789, "max": 2**52}
    await store.save_turn(user(KEY_A), session(KEY_A), [], [], chat_refs=big)
    for purpose, chat_id in big.items():
        assert await store.get_chat_ref(KEY_A, purpose) == chat_id


async def test_chat_refs_are_set_replaced_and_deleted(store: Store) -> None:
    await store.save_turn(user(KEY_A), session(KEY_A), [], [])
    assert await store.get_chat_ref(KEY_A, "reminder") is None
    await store.set_chat_ref(KEY_A, "reminder", CHAT_A)
    await store.set_chat_ref(KEY_A, "reminder", CHAT_B)
    await store.set_chat_ref(KEY_A, "other", CHAT_A)
    assert await store.get_chat_ref(KEY_A, "reminder") == CHAT_B
    await store.delete_chat_ref(KEY_A, "reminder")
    assert await store.get_chat_ref(KEY_A, "reminder") is None
    assert await store.get_chat_ref(KEY_A, "other") == CHAT_A


async def test_mark_inactive(store: Store) -> None:
    await store.save_turn(user(KEY_A), session(KEY_A), [], [])
    await store.mark_inactive(KEY_A)
    loaded, _ = await store.load(KEY_A)
    assert loaded is not None and loaded.active is False
    await store.mark_inactive(KEY_B)  # unknown: nothing to do, nothing created
    assert await store.load(KEY_B) == (None, None)


async def test_due_referrals_come_oldest_due_first(store: Store) -> None:
    rows = [
        referral(KEY_A, "late", due=300.0, created=1.0),
        referral(KEY_A, "b-tie", due=100.0, created=5.0),
        referral(KEY_A, "a-tie", due=100.0, created=5.0),
        referral(KEY_A, "Z-tie", due=100.0, created=5.0),  # ties go by id in byte order on both engines
        referral(KEY_A, "early", due=50.0, created=9.0),
        referral(KEY_A, "same-due-older", due=100.0, created=2.0),
        referral(KEY_A, "retry", status="failed", due=150.0),
        referral(KEY_A, "sent", status="delivered", due=10.0),
        referral(KEY_A, "done", status="acknowledged", due=10.0),
    ]
    await store.save_turn(user(KEY_A), session(KEY_A), [], rows)
    due = await store.due_referrals(200.0, 10)
    assert [r.id for r in due] == ["early", "same-due-older", "Z-tie", "a-tie", "b-tie", "retry"]
    assert [r.id for r in await store.due_referrals(200.0, 2)] == ["early", "same-due-older"]
    assert await store.due_referrals(49.0, 10) == []
    # Acknowledgement deadlines: the worker asks for delivered ones explicitly.
    assert [r.id for r in await store.due_referrals(200.0, 10, statuses=("delivered",))] == ["sent"]
    with pytest.raises(ValueError):
        await store.due_referrals(200.0, 10, statuses=("bogus",))


async def test_update_referral_changes_only_what_it_is_given(store: Store) -> None:
    original = referral(KEY_A, "r", due=100.0)
    await store.save_turn(user(KEY_A), session(KEY_A), [], [original])

    assert await store.update_referral("r", status="failed", attempts=1, next_attempt_at=160.0,
                                       last_error="HTTP 503", updated_at=130.0) is True
    got = await store.get_referral("r")
    assert got == dataclasses.replace(original, status="failed", attempts=1, next_attempt_at=160.0,
                                      last_error="HTTP 503", updated_at=130.0)
    assert await store.due_referrals(150.0, 10) == []
    assert [r.id for r in await store.due_referrals(160.0, 10)] == ["r"]

    assert await store.update_referral("r", status="delivered") is True
    got = await store.get_referral("r")
    assert got == dataclasses.replace(original, status="delivered", attempts=1, next_attempt_at=160.0,
                                      last_error="HTTP 503", updated_at=130.0)
    assert await store.due_referrals(1e12, 10) == []  # delivered is not re-sent by default

    with pytest.raises(ValueError):
        await store.update_referral("r", status="lost")
    assert await store.update_referral("missing", status="dead") is False
    assert await store.get_referral("missing") is None


async def test_concurrent_turns_all_land(store: Store) -> None:
    keys = [f"{i:064x}" for i in range(25)]
    await asyncio.gather(*(store.save_turn(user(k), session(k), [event(k)], [referral(k, k)]) for k in keys))
    stats = await store.stats(0)
    assert stats.events == 25 and stats.users == 25
    assert len(await store.due_referrals(T0, 100)) == 25


async def test_a_closed_store_says_so(backend: Backend) -> None:
    store = backend.make_store()
    assert await store.healthy() is False
    with pytest.raises(StoreError):
        await store.load(KEY_A)
    await store.open()
    await store.open()  # a second open is harmless
    assert await store.healthy() is True
    await store.close()
    await store.close()
    assert await store.healthy() is False


async def test_an_unreachable_postgres_is_a_store_error_without_the_password() -> None:
    pytest.importorskip("asyncpg", reason="the PostgreSQL backend needs asyncpg (pip install -e '.[test]')")
    from bot.store.postgres import PostgresStore

    store = PostgresStore("postgresql://hub:s3cret-pw@127.0.0.1:1/hub")  # nothing listens on port 1
    with pytest.raises(StoreError, match="cannot connect to PostgreSQL") as excinfo:
        await store.open()
    assert "s3cret-pw" not in str(excinfo.value) and "hub:***@127.0.0.1:1" in str(excinfo.value)
    assert await store.healthy() is False


async def test_in_memory_store_works() -> None:
    async with SqliteStore(":memory:") as store:
        await store.save_turn(user(KEY_A), session(KEY_A), [event(KEY_A)], [])
        assert (await store.load(KEY_A))[0] == user(KEY_A)


# -- claims: the outbox shared by several workers ------------------------------------------------


async def test_claim_takes_due_referrals_oldest_first_under_a_lease(store: Store) -> None:
    rows = [
        referral(KEY_A, "late", due=300.0, created=1.0),
        referral(KEY_A, "b-tie", due=100.0, created=5.0),
        referral(KEY_A, "a-tie", due=100.0, created=5.0),
        referral(KEY_A, "Z-tie", due=100.0, created=5.0),
        referral(KEY_A, "early", due=50.0, created=9.0),
        referral(KEY_A, "same-due-older", due=100.0, created=2.0),
        referral(KEY_A, "retry", status="failed", due=150.0),
        referral(KEY_A, "lease-ran-out", status="delivering", due=150.0, created=1.0),
        referral(KEY_A, "lease-running", status="delivering", due=201.0),
        referral(KEY_A, "sent", status="delivered", due=10.0),
        referral(KEY_A, "done", status="acknowledged", due=10.0),
        referral(KEY_A, "gave-up", status="dead", due=10.0),
    ]
    await store.save_turn(user(KEY_A), session(KEY_A), [], rows)
    originals = {r.id: r for r in rows}

    first = await store.claim_referrals(200.0, 4, "worker-1", 30.0)
    assert [r.id for r in first] == ["early", "same-due-older", "Z-tie", "a-tie"]
    for claimed in first:
        assert claimed == dataclasses.replace(originals[claimed.id], status="delivering", next_attempt_at=230.0,
                                              updated_at=200.0, claimed_by="worker-1")
        assert await store.get_referral(claimed.id) == claimed  # returned as stored

    second = await store.claim_referrals(200.0, 10, "worker-2", 30.0)
    assert [r.id for r in second] == ["b-tie", "lease-ran-out", "retry"]
    assert {r.claimed_by for r in second} == {"worker-2"}
    assert await store.claim_referrals(200.0, 10, "worker-3", 30.0) == []
    for untouched in ("late", "lease-running", "sent", "done", "gave-up"):
        assert await store.get_referral(untouched) == originals[untouched], untouched

    # When the leases run out, every claim is up for grabs again (the late one too, now due).
    again = await store.claim_referrals(300.0, 100, "worker-3", 30.0)
    assert {r.id for r in again} == {r.id for r in first + second} | {"late", "lease-running"}
    assert await store.claim_referrals(300.0, 0, "worker-3", 30.0) == []
    with pytest.raises(ValueError):
        await store.claim_referrals(300.0, 1, "", 30.0)
    with pytest.raises(ValueError):
        await store.claim_referrals(300.0, 1, "worker-3", 0)


async def test_an_expired_lease_is_reclaimed_by_another_worker(store: Store, backend: Backend) -> None:
    await store.save_turn(user(KEY_A), session(KEY_A), [], [referral(KEY_A, "r", due=T0)])
    async with backend.make_store() as other:  # a second process
        [held] = await store.claim_referrals(T0, 10, "worker-a", 60.0)
        assert (held.status, held.next_attempt_at, held.claimed_by) == ("delivering", T0 + 60, "worker-a")
        # While the lease runs, nobody claims it: not another worker, not the same one again.
        assert await other.claim_referrals(T0 + 59.9, 10, "worker-b", 60.0) == []
        assert await store.claim_referrals(T0 + 30, 10, "worker-a", 60.0) == []

        # Worker a stalled; its lease ran out and worker b takes the referral over.
        [taken] = await other.claim_referrals(T0 + 60, 10, "worker-b", 60.0)
        assert (taken.id, taken.status, taken.next_attempt_at, taken.claimed_by) == (
            "r", "delivering", T0 + 120, "worker-b")
        assert await store.claim_referrals(T0 + 61, 10, "worker-a", 60.0) == []

        # Worker a's late outcome cannot overwrite worker b's claim; worker b's lands.
        assert await store.update_referral("r", status="dead", updated_at=T0 + 61, if_claimed_by="worker-a") is False
        assert await store.get_referral("r") == taken
        assert await other.update_referral("r", status="delivered", attempts=1, updated_at=T0 + 62,
                                           if_claimed_by="worker-b") is True
        delivered = await store.get_referral("r")
        assert delivered is not None and (delivered.status, delivered.attempts) == ("delivered", 1)
        # Delivered is no longer claimable, nor updatable under a claim.
        assert await other.claim_referrals(T0 + 10_000, 10, "worker-b", 60.0) == []
        assert await other.update_referral("r", status="failed", if_claimed_by="worker-b") is False
        assert await store.update_referral("missing", status="failed", if_claimed_by="worker-b") is False


async def test_three_workers_claim_every_referral_exactly_once(store: Store, backend: Backend) -> None:
    ids = []
    for u in range(30):
        key = f"{u:064x}"
        batch = [referral(key, f"r-{u:02d}-{n}", due=T0 - n, created=T0 - 100 + u) for n in range(10)]
        ids += [r.id for r in batch]
        await store.save_turn(user(key), session(key), [], batch)
    assert len(set(ids)) == 300

    workers = [backend.make_store() for _ in range(3)]  # three processes: three connections or pools
    for worker in workers:
        await worker.open()

    async def drain(worker: Store, name: str) -> list[ReferralRecord]:
        claimed: list[ReferralRecord] = []
        while batch := await worker.claim_referrals(T0, 7, name, 60.0):
            assert len(batch) <= 7
            claimed += batch
        return claimed

    try:
        # Each worker runs two senders at once, all six against the same outbox.
        results = await asyncio.gather(*(drain(w, f"worker-{i}") for i, w in enumerate(workers) for _ in range(2)))
    finally:
        for worker in workers:
            await worker.close()

    claimed = [r for result in results for r in result]
    counts = collections.Counter(r.id for r in claimed)
    assert [i for i, n in counts.items() if n > 1] == []  # nobody got a referral another worker holds
    assert set(counts) == set(ids)  # and none was left behind
    for record in claimed:
        assert (record.status, record.next_attempt_at) == ("delivering", T0 + 60)
        stored = await store.get_referral(record.id)
        assert stored is not None and stored.claimed_by == record.claimed_by
    assert await store.due_referrals(T0, 1000, statuses=records.CLAIMABLE_REFERRAL_STATUSES) == []
    if backend.name == "postgres":  # separate pools really ran side by side
        assert len({r.claimed_by for r in claimed}) >= 2
