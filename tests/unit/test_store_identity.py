"""User keys, the hash key they are made with, and the store factory."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest

from bot.store import SqliteStore, load_or_create_hash_key, open_store, user_key
from bot.store.identity import key_file_for


def test_user_key_is_a_stable_hmac_that_differs_per_id_platform_and_key() -> None:
    key = user_key(b"test-key", "telegram", 12345)
    # A fixed vector: changing how keys are made would orphan every stored user.
    assert key == "7eac9c0d3b02cfa1e41d9fb6b2d357369b6e41a23bb2b2f34cad62fed02e2736"
    assert user_key(b"test-key", "telegram", 12345) == key
    assert user_key(b"test-key", "telegram", 12346) != key
    assert user_key(b"test-key", "terminal", 12345) != key
    assert user_key(b"other-key", "telegram", 12345) != key
    assert "12345" not in key
    with pytest.raises(ValueError):
        user_key(b"", "telegram", 1)
    with pytest.raises(ValueError):
        user_key(b"k", "tele:gram", 1)


def test_generated_key_file_is_private_and_reused(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    db = tmp_path / "data" / "hub.sqlite3"
    with caplog.at_level(logging.WARNING, logger="bot.store.identity"):
        first = load_or_create_hash_key(None, db)
    path = key_file_for(db)
    assert path == tmp_path / "data" / "hub.sqlite3.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) == 64 and bytes.fromhex(first.decode())  # 32 random bytes, as hex
    assert caplog.records and all(first.decode() not in r.getMessage() for r in caplog.records)
    assert load_or_create_hash_key(None, db) == first
    assert load_or_create_hash_key("", db) == first  # an empty setting counts as unset
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind
    # The file's content, copied into HUBBOT_HASH_KEY, gives the same key.
    assert load_or_create_hash_key(path.read_text().strip(), db) == first


def test_configured_key_wins_and_writes_no_file(tmp_path: Path) -> None:
    db = tmp_path / "hub.sqlite3"
    assert load_or_create_hash_key("s3cret-ключ", db) == "s3cret-ключ".encode("utf-8")
    assert not key_file_for(db).exists()
    generated = load_or_create_hash_key(None, db)
    assert load_or_create_hash_key("s3cret-ключ", db) != generated


def test_a_loose_key_file_is_tightened_and_an_empty_one_refused(tmp_path: Path) -> None:
    db = tmp_path / "hub.sqlite3"
    key = load_or_create_hash_key(None, db)
    key_file_for(db).chmod(0o644)
    assert load_or_create_hash_key(None, db) == key
    assert stat.S_IMODE(key_file_for(db).stat().st_mode) == 0o600
    key_file_for(db).write_text("")
    with pytest.raises(ValueError, match="empty"):
        load_or_create_hash_key(None, db)


def test_memory_database_gets_an_ephemeral_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    first = load_or_create_hash_key(None, ":memory:")
    assert first and first != load_or_create_hash_key(None, ":memory:")
    assert list(tmp_path.iterdir()) == []


def test_open_store_picks_the_backend() -> None:
    assert isinstance(open_store("hub.sqlite3"), SqliteStore)
    assert isinstance(open_store(":memory:"), SqliteStore)
    with pytest.raises(NotImplementedError, match="scale-out"):
        open_store("postgresql://hub:pw@db/hub")
    with pytest.raises(ValueError) as excinfo:
        open_store("mysql://hub:pw@db/hub")
    assert "pw" not in str(excinfo.value)
