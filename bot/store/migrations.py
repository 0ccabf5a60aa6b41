"""The schema as one ordered list of forward migrations, and the runners that apply the missing ones.

One list of versions serves both engines. A migration's `statements` are SQL that SQLite and
PostgreSQL both accept (TEXT, INTEGER, DOUBLE PRECISION, CHECK, REFERENCES ... ON DELETE CASCADE,
no autoincrement); where the engines must differ, `postgres` holds PostgreSQL's own statements for
that same version (e.g. BIGINT for Telegram chat ids, which do not fit PostgreSQL's 32-bit INTEGER;
SQLite's INTEGER is already 64-bit). Never edit a migration that has shipped: append a new one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import aiosqlite

if TYPE_CHECKING:  # asyncpg is optional (the `scale` extra); only its connection type is named here
    import asyncpg

log = logging.getLogger(__name__)

Engine = Literal["sqlite", "postgres"]


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]
    postgres: tuple[str, ...] | None = None  # PostgreSQL's statements when they must differ from `statements`

    def statements_for(self, engine: Engine) -> tuple[str, ...]:
        if engine == "postgres" and self.postgres is not None:
            return self.postgres
        return self.statements


# Every table that holds rows about a person, children first. forget() deletes from each of them on
# both engines; a migration that adds a table holding user_key must add it here too (a test checks it).
USER_TABLES: tuple[str, ...] = ("live_sessions", "chat_refs", "referrals", "events", "sessions", "users")

SCHEMA_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    description TEXT NOT NULL
)"""

_REFERRALS_TABLE = """CREATE TABLE referrals (
                id TEXT PRIMARY KEY,
                user_key TEXT NOT NULL REFERENCES users (user_key) ON DELETE CASCADE,
                org_id TEXT NOT NULL,
                status TEXT NOT NULL CHECK (status IN ('pending', 'delivering', 'delivered', 'acknowledged',
                                                      'declined', 'failed', 'dead', 'cancelled')),
                payload TEXT NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0,
                next_attempt_at DOUBLE PRECISION NOT NULL,
                created_at DOUBLE PRECISION NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL,
                last_error TEXT
            )"""
_CHAT_REFS_TABLE = """CREATE TABLE chat_refs (
                user_key TEXT NOT NULL REFERENCES users (user_key) ON DELETE CASCADE,
                purpose TEXT NOT NULL,
                chat_id {chat_id_type} NOT NULL,
                PRIMARY KEY (user_key, purpose)
            )"""
_LIVE_SESSIONS_TABLE = """CREATE TABLE live_sessions (
                user_key TEXT PRIMARY KEY REFERENCES users (user_key) ON DELETE CASCADE,
                org_id TEXT NOT NULL,
                chat_id {chat_id_type} NOT NULL,
                staff_chat_id {chat_id_type} NOT NULL,
                topic_id {chat_id_type} NOT NULL,
                opened_at DOUBLE PRECISION NOT NULL,
                last_staff_at DOUBLE PRECISION
            )"""
_LIVE_SESSIONS_INDEX = "CREATE UNIQUE INDEX live_sessions_topic ON live_sessions (staff_chat_id, topic_id)"
_OUTBOX_INDEXES = (
    "CREATE INDEX referrals_due ON referrals (status, next_attempt_at)",
    "CREATE INDEX referrals_user_key ON referrals (user_key)",
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "users, sessions and events",
        (
            """CREATE TABLE users (
                user_key TEXT PRIMARY KEY,
                language TEXT,
                region TEXT,
                consent TEXT NOT NULL DEFAULT '{}',
                created_at DOUBLE PRECISION NOT NULL,
                last_seen DOUBLE PRECISION NOT NULL,
                active INTEGER NOT NULL DEFAULT 1
            )""",
            """CREATE TABLE sessions (
                user_key TEXT PRIMARY KEY REFERENCES users (user_key) ON DELETE CASCADE,
                state TEXT NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL
            )""",
            """CREATE TABLE events (
                user_key TEXT NOT NULL REFERENCES users (user_key) ON DELETE CASCADE,
                at DOUBLE PRECISION NOT NULL,
                kind TEXT NOT NULL,
                intent TEXT,
                risk TEXT NOT NULL,
                rule TEXT,
                resources TEXT NOT NULL DEFAULT '[]'
            )""",
            "CREATE INDEX events_user_key ON events (user_key)",
            "CREATE INDEX events_at ON events (at)",
        ),
    ),
    Migration(
        2,
        "referral outbox and pending chat refs",
        (_REFERRALS_TABLE, *_OUTBOX_INDEXES, _CHAT_REFS_TABLE.format(chat_id_type="INTEGER")),
        postgres=(_REFERRALS_TABLE, *_OUTBOX_INDEXES, _CHAT_REFS_TABLE.format(chat_id_type="BIGINT")),
    ),
    Migration(
        3,
        "referral claims: the worker holding a delivering referral's lease",
        ("ALTER TABLE referrals ADD COLUMN claimed_by TEXT",),
    ),
    Migration(
        4,
        "live hand-off: the person <-> staff topic mapping, only while a live conversation is open",
        (_LIVE_SESSIONS_TABLE.format(chat_id_type="INTEGER"), _LIVE_SESSIONS_INDEX),
        postgres=(_LIVE_SESSIONS_TABLE.format(chat_id_type="BIGINT"), _LIVE_SESSIONS_INDEX),
    ),
)

LATEST_VERSION = MIGRATIONS[-1].version

# pg_advisory_xact_lock(key, hashtext(current_schema())): processes that open the same schema at once
# migrate it one after the other.
POSTGRES_MIGRATION_LOCK = 0x68756262  # "hubb"


class SchemaTooNewError(RuntimeError):
    """The database was migrated by a newer hubbot than this one."""


def _too_new(version: int) -> SchemaTooNewError:
    return SchemaTooNewError(
        f"the database is at schema version {version} but this hubbot knows up to {LATEST_VERSION}; "
        "upgrade hubbot (migrations only go forward)"
    )


def _pending(version: int, target: int) -> list[Migration]:
    if version > LATEST_VERSION:
        raise _too_new(version)
    return [m for m in MIGRATIONS if version < m.version <= target]


def _log_applied(applied: list[int]) -> None:
    if applied:
        log.info("database schema migrated to version %d (applied %s)", applied[-1], applied)


# -- SQLite --------------------------------------------------------------------------------------


async def current_version(conn: aiosqlite.Connection) -> int:
    """The highest applied version; 0 for a database without a schema_version table."""
    rows = await conn.execute_fetchall(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    )
    if not list(rows):
        return 0
    rows = await conn.execute_fetchall("SELECT MAX(version) FROM schema_version")
    value = list(rows)[0][0]
    return int(value or 0)


async def apply_migrations(conn: aiosqlite.Connection, target: int | None = None) -> list[int]:
    """Apply the migrations after the database's version up to `target` (default: the latest),
    all in one `BEGIN IMMEDIATE` transaction; return the versions applied (empty when up to date).

    `conn` must be in autocommit mode (isolation_level=None) so the transaction is ours.
    """
    target = LATEST_VERSION if target is None else target
    await conn.execute("BEGIN IMMEDIATE")
    try:
        await conn.execute(SCHEMA_VERSION_TABLE)
        applied: list[int] = []
        for migration in _pending(await current_version(conn), target):
            for statement in migration.statements_for("sqlite"):
                await conn.execute(statement)
            await conn.execute(
                "INSERT INTO schema_version (version, description) VALUES (?, ?)",
                (migration.version, migration.description),
            )
            applied.append(migration.version)
        await conn.execute("COMMIT")
    except BaseException:
        await conn.rollback()
        raise
    _log_applied(applied)
    return applied


# -- PostgreSQL ----------------------------------------------------------------------------------


async def current_postgres_version(conn: asyncpg.Connection[Any]) -> int:
    """The highest applied version in the connection's current schema; 0 without a schema_version table."""
    if await conn.fetchval("SELECT to_regclass('schema_version')") is None:
        return 0
    return int(await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version"))


async def apply_postgres_migrations(conn: asyncpg.Connection[Any], target: int | None = None) -> list[int]:
    """The PostgreSQL runner: the same migrations, in one transaction (PostgreSQL's DDL is transactional,
    so a failing migration leaves the schema as it was), under an advisory lock so that processes
    starting together migrate one after the other. Tables land in the connection's current schema."""
    target = LATEST_VERSION if target is None else target
    applied: list[int] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))", POSTGRES_MIGRATION_LOCK)
        await conn.execute(SCHEMA_VERSION_TABLE)
        for migration in _pending(await current_postgres_version(conn), target):
            for statement in migration.statements_for("postgres"):
                await conn.execute(statement)
            await conn.execute(
                "INSERT INTO schema_version (version, description) VALUES ($1, $2)",
                migration.version,
                migration.description,
            )
            applied.append(migration.version)
    _log_applied(applied)
    return applied
