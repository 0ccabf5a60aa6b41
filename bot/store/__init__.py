"""Persistence behind one interface: `open_store(HUBBOT_DB)` picks the backend for a path or URL."""

from __future__ import annotations

from pathlib import Path

from bot.store.base import ConflictError, MissingDriverError, Store, StoreError
from bot.store.identity import load_or_create_hash_key, user_key
from bot.store.records import (
    FINISHED_REFERRAL_STATUSES,
    REFERRAL_STATUSES,
    EventRecord,
    LiveSessionRecord,
    ReferralRecord,
    SessionRecord,
    Stats,
    UserRecord,
    referral_purpose,
)
from bot.store.sqlite import SqliteStore

__all__ = [
    "FINISHED_REFERRAL_STATUSES",
    "REFERRAL_STATUSES",
    "ConflictError",
    "EventRecord",
    "LiveSessionRecord",
    "MissingDriverError",
    "ReferralRecord",
    "SessionRecord",
    "SqliteStore",
    "Stats",
    "Store",
    "StoreError",
    "UserRecord",
    "load_or_create_hash_key",
    "open_store",
    "referral_purpose",
    "user_key",
]

_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def open_store(db: str | Path) -> Store:
    """A store for `HUBBOT_DB` (not yet opened: `await store.open()` or `async with`).

    A file path or ":memory:" gives SQLite; a postgresql:// or postgres:// URL gives PostgreSQL, which
    needs the optional asyncpg driver (`pip install 'hubbot[scale]'`; MissingDriverError says so).
    """
    text = str(db)
    if text.lower().startswith(_POSTGRES_SCHEMES):
        from bot.store.postgres import PostgresStore  # imports asyncpg only now, and only when it is needed

        return PostgresStore(text)
    if "://" in text:
        raise ValueError("HUBBOT_DB must be a SQLite file path, ':memory:' or a postgresql:// URL")
    return SqliteStore(text)
