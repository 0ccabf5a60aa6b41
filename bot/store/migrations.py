"""The schema as an ordered list of forward migrations, and the runner that applies the missing ones.

The SQL sticks to what SQLite and PostgreSQL both accept (TEXT, INTEGER, DOUBLE PRECISION, CHECK,
REFERENCES ... ON DELETE CASCADE, no autoincrement) so a PostgreSQL backend can reuse it. Never edit
a migration that has shipped: append a new one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import aiosqlite

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


SCHEMA_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    description TEXT NOT NULL
)"""

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
        (
            """CREATE TABLE referrals (
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
            )""",
            "CREATE INDEX referrals_due ON referrals (status, next_attempt_at)",
            "CREATE INDEX referrals_user_key ON referrals (user_key)",
            """CREATE TABLE chat_refs (
                user_key TEXT NOT NULL REFERENCES users (user_key) ON DELETE CASCADE,
                purpose TEXT NOT NULL,
                chat_id INTEGER NOT NULL,
                PRIMARY KEY (user_key, purpose)
            )""",
        ),
    ),
)

LATEST_VERSION = MIGRATIONS[-1].version


class SchemaTooNewError(RuntimeError):
    """The database was migrated by a newer hubbot than this one."""


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
        version = await current_version(conn)
        if version > LATEST_VERSION:
            raise SchemaTooNewError(
                f"the database is at schema version {version} but this hubbot knows up to {LATEST_VERSION}; "
                "upgrade hubbot (migrations only go forward)"
            )
        applied: list[int] = []
        for migration in MIGRATIONS:
            if version < migration.version <= target:
                for statement in migration.statements:
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
    if applied:
        log.info("database schema migrated to version %d (applied %s)", applied[-1], applied)
    return applied
