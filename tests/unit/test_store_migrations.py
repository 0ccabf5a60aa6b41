"""Schema migrations on both engines: forward from an older database, a no-op when current, all-or-nothing,
never backwards, and safe when several processes open a new database at once."""

from __future__ import annotations

import asyncio

import pytest

from bot.store import ReferralRecord, StoreError
from bot.store import migrations
from bot.store.migrations import LATEST_VERSION, MIGRATIONS, Migration
from tests.unit.store_support import Backend, backend  # noqa: F401  (pytest fixtures)

KEY = "c" * 64
ALL_VERSIONS = [m.version for m in MIGRATIONS]


def test_versions_run_one_two_three_without_gaps() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
    assert LATEST_VERSION == len(MIGRATIONS) >= 3


def test_engine_variants_keep_the_same_shape() -> None:
    # A PostgreSQL variant may change types, never what exists: same number of statements, same objects.
    for migration in MIGRATIONS:
        sqlite, postgres = migration.statements_for("sqlite"), migration.statements_for("postgres")
        assert len(sqlite) == len(postgres), migration.version
        for a, b in zip(sqlite, postgres, strict=True):
            assert a.split("(")[0] == b.split("(")[0], (migration.version, a, b)


async def test_fresh_database_gets_every_migration_and_a_second_open_is_a_no_op(backend: Backend) -> None:
    async with backend.make_store() as store:
        assert store.migrations_applied == ALL_VERSIONS  # type: ignore[attr-defined]
    first = await backend.schema()
    assert set(await backend.tables()) >= {"users", "sessions", "events", "referrals", "chat_refs", "schema_version"}
    async with backend.make_store() as store:
        assert store.migrations_applied == []  # type: ignore[attr-defined]
    assert await backend.schema() == first
    assert await backend.versions() == ALL_VERSIONS


async def test_an_old_version_database_is_migrated_forward_keeping_its_rows(backend: Backend) -> None:
    assert await backend.apply_migrations(target=1) == [1]
    await backend.execute("INSERT INTO users (user_key, language, region, consent, created_at, last_seen, active) "
                          "VALUES (?, 'es', 'MX', '{}', 10.0, 20.0, 1)", KEY)
    await backend.execute("INSERT INTO sessions (user_key, state, updated_at) VALUES (?, '{\"turn\": 4}', 20.0)", KEY)
    assert await backend.versions() == [1]
    assert "referrals" not in await backend.tables()

    async with backend.make_store() as store:
        assert store.migrations_applied == list(range(2, LATEST_VERSION + 1))  # type: ignore[attr-defined]
        user, session = await store.load(KEY)
        assert user is not None and user.language == "es" and user.last_seen == 20.0
        assert session is not None and session.state == {"turn": 4}
        # What the newer schema adds works on the migrated database.
        ref = ReferralRecord.new(KEY, "example-org", {"region": "MX"}, 30.0)
        await store.save_turn(user, session, [], [ref], chat_refs={"reminder": 42})
        assert await store.get_referral(ref.id) == ref
        [claimed] = await store.claim_referrals(30.0, 10, "worker-1", 60.0)
        assert claimed.claimed_by == "worker-1"
    assert await backend.versions() == list(range(1, LATEST_VERSION + 1))


async def test_a_failing_migration_leaves_the_database_as_it_was(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with backend.make_store():
        pass
    before = await backend.schema()
    broken = Migration(LATEST_VERSION + 1, "half-written", ("CREATE TABLE half (x INTEGER)", "THIS IS NOT SQL"))
    monkeypatch.setattr(migrations, "MIGRATIONS", (*MIGRATIONS, broken))
    monkeypatch.setattr(migrations, "LATEST_VERSION", broken.version)
    store = backend.make_store()
    with pytest.raises(StoreError):
        await store.open()
    assert await store.healthy() is False
    assert await backend.schema() == before
    assert "half" not in await backend.tables()
    assert (await backend.versions())[-1] == LATEST_VERSION


async def test_a_database_from_a_newer_hubbot_is_refused(backend: Backend) -> None:
    async with backend.make_store():
        pass
    await backend.execute("INSERT INTO schema_version (version, description) VALUES (?, 'from the future')",
                          LATEST_VERSION + 1)
    with pytest.raises(StoreError, match="upgrade hubbot"):
        await backend.make_store().open()


async def test_processes_opening_a_new_database_together_migrate_it_once(backend: Backend) -> None:
    stores = [backend.make_store() for _ in range(3)]
    try:
        await asyncio.gather(*(store.open() for store in stores))
        applied = sorted(store.migrations_applied for store in stores)  # type: ignore[attr-defined]
        assert applied == [[], [], ALL_VERSIONS]
        assert await backend.versions() == ALL_VERSIONS
        assert all([await store.healthy() for store in stores])
    finally:
        for store in stores:
            await store.close()
