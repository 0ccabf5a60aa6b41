"""Schema migrations: forward from an older file, a no-op when current, all-or-nothing, never backwards."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import aiosqlite
import pytest

from bot.store import ReferralRecord, SqliteStore, StoreError
from bot.store import migrations
from bot.store.migrations import LATEST_VERSION, MIGRATIONS, Migration, apply_migrations

KEY = "c" * 64


def schema(path: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()


def versions(path: Path) -> list[int]:
    with sqlite3.connect(path) as conn:
        return [v for (v,) in conn.execute("SELECT version FROM schema_version ORDER BY version")]


def test_versions_run_one_two_three_without_gaps() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
    assert LATEST_VERSION == len(MIGRATIONS) >= 2


async def test_fresh_file_gets_every_migration_and_a_second_open_is_a_no_op(tmp_path: Path) -> None:
    path = tmp_path / "fresh.sqlite3"
    async with SqliteStore(path) as store:
        assert store.migrations_applied == [m.version for m in MIGRATIONS]
    first = schema(path)
    async with SqliteStore(path) as store:
        assert store.migrations_applied == []
    assert schema(path) == first
    assert versions(path) == [m.version for m in MIGRATIONS]


async def test_an_old_version_file_is_migrated_forward_keeping_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    async with aiosqlite.connect(path, isolation_level=None) as conn:
        assert await apply_migrations(conn, target=1) == [1]
        await conn.execute("INSERT INTO users (user_key, language, region, consent, created_at, last_seen, active) "
                           "VALUES (?, 'es', 'MX', '{}', 10.0, 20.0, 1)", (KEY,))
        await conn.execute("INSERT INTO sessions (user_key, state, updated_at) VALUES (?, '{\"turn\": 4}', 20.0)", (KEY,))
    assert versions(path) == [1]
    assert "referrals" not in {name for _, name, _ in schema(path)}

    async with SqliteStore(path) as store:
        assert store.migrations_applied == list(range(2, LATEST_VERSION + 1))
        user, session = await store.load(KEY)
        assert user is not None and user.language == "es" and user.last_seen == 20.0
        assert session is not None and session.state == {"turn": 4}
        # What the newer schema adds works on the migrated file.
        ref = ReferralRecord.new(KEY, "example-org", {"region": "MX"}, 30.0)
        await store.save_turn(user, session, [], [ref], chat_refs={"reminder": 42})
        assert await store.get_referral(ref.id) == ref
    assert versions(path) == list(range(1, LATEST_VERSION + 1))


async def test_a_failing_migration_leaves_the_file_as_it_was(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "broken.sqlite3"
    async with SqliteStore(path):
        pass
    before = schema(path)
    broken = Migration(LATEST_VERSION + 1, "half-written", ("CREATE TABLE half (x INTEGER)", "THIS IS NOT SQL"))
    monkeypatch.setattr(migrations, "MIGRATIONS", (*MIGRATIONS, broken))
    monkeypatch.setattr(migrations, "LATEST_VERSION", broken.version)
    with pytest.raises(StoreError):
        await SqliteStore(path).open()
    assert schema(path) == before
    assert versions(path)[-1] == LATEST_VERSION


async def test_a_file_from_a_newer_hubbot_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "newer.sqlite3"
    async with SqliteStore(path):
        pass
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO schema_version (version, description) VALUES (?, 'from the future')",
                     (LATEST_VERSION + 1,))
    with pytest.raises(StoreError, match="upgrade hubbot"):
        await SqliteStore(path).open()
