"""The Store on one SQLite file (aiosqlite): WAL, one connection as the single writer, short transactions."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from bot.store.base import ConflictError, Store, StoreError
from bot.store.identity import MEMORY_DB
from bot.store.migrations import USER_TABLES, SchemaTooNewError, apply_migrations
from bot.store.records import (
    CLAIMABLE_REFERRAL_STATUSES,
    FINISHED_REFERRAL_STATUSES,
    REFERRAL_STATUSES,
    RETRYABLE_REFERRAL_STATUSES,
    EventRecord,
    LiveSessionRecord,
    ReferralRecord,
    SessionRecord,
    Stats,
    UserRecord,
    referral_purpose,
)
from bot.store.rows import (
    MAX_ERROR_CHARS,
    REFERRAL_COLUMNS,
    STATS_GROUPS,
    STATS_TOTALS,
    check_claim,
    LIVE_COLUMNS as _LIVE_COLUMNS,
    dumps,
    live_from_row as _live_from_row,
    referral_from_row,
    referral_row,
    stats_from,
)

log = logging.getLogger(__name__)

__all__ = ["USER_TABLES", "SqliteStore"]  # USER_TABLES (bot.store.migrations) is re-exported for older imports

BUSY_TIMEOUT_MS = 5000
HEALTH_TIMEOUT_S = 5.0


async def _enable_wal(conn: aiosqlite.Connection) -> None:
    """PRAGMA journal_mode = WAL, retried: switching a new file to WAL needs an exclusive lock and SQLite answers
    "database is locked" at once (without its busy handler) while another process opening the file holds it."""
    deadline = asyncio.get_running_loop().time() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            await conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            busy = getattr(exc, "sqlite_errorcode", None) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
            if not busy or asyncio.get_running_loop().time() >= deadline:
                raise
            await asyncio.sleep(0.01)


class SqliteStore(Store):
    """One aiosqlite connection per process; an asyncio.Lock makes it the single writer and keeps
    reads out of another task's open transaction."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._conn: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()
        self.migrations_applied: list[int] = []  # what the last open() applied (empty: the schema was current)

    # -- lifecycle -----------------------------------------------------------------------------

    async def open(self) -> None:
        if self._conn is not None:
            return
        if self.path != MEMORY_DB:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = await aiosqlite.connect(self.path, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the database {self.path}: {exc}") from exc
        try:
            await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            await _enable_wal(conn)
            await conn.execute("PRAGMA synchronous = NORMAL")
            await conn.execute("PRAGMA foreign_keys = ON")
            await conn.execute("PRAGMA secure_delete = ON")  # forgotten rows are zeroed, not left in free pages
            self.migrations_applied = await apply_migrations(conn)
        except SchemaTooNewError as exc:
            await conn.close()
            raise StoreError(str(exc)) from exc
        except BaseException as exc:
            await conn.close()
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"cannot prepare the database {self.path}: {exc}") from exc
            raise
        self._conn = conn

    async def close(self) -> None:
        if self._conn is None:
            return
        async with self._lock:
            conn, self._conn = self._conn, None
            try:
                await conn.execute("PRAGMA optimize")
            except sqlite3.Error:
                pass
            finally:
                await conn.close()

    async def healthy(self) -> bool:
        conn = self._conn
        if conn is None:
            return False
        try:
            rows = await asyncio.wait_for(conn.execute_fetchall("SELECT 1"), HEALTH_TIMEOUT_S)
            return list(rows) == [(1,)]
        except Exception:  # noqa: BLE001 - a health check reports, it never raises
            return False

    # -- transactions --------------------------------------------------------------------------

    def _require(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise StoreError("the store is not open")
        return self._conn

    @asynccontextmanager
    async def _transaction(self, *, write: bool) -> AsyncIterator[aiosqlite.Connection]:
        """BEGIN IMMEDIATE (or a read snapshot) ... COMMIT under the lock; ROLLBACK on any error."""
        conn = self._require()
        async with self._lock:
            try:
                await conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                yield conn
                await conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    await conn.rollback()
                if isinstance(exc, sqlite3.IntegrityError):
                    raise ConflictError(f"rolled back: {exc}") from exc
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"rolled back: {exc}") from exc
                raise

    # -- users and sessions --------------------------------------------------------------------

    async def load(self, user_key: str) -> tuple[UserRecord | None, SessionRecord | None]:
        conn = self._require()
        async with self._lock:
            try:
                # One statement is one consistent read: no BEGIN/COMMIT round trips needed.
                rows = list(
                    await conn.execute_fetchall(
                        "SELECT u.user_key, u.language, u.region, u.consent, u.created_at, u.last_seen, u.active, "
                        "s.state, s.updated_at FROM users u LEFT JOIN sessions s ON s.user_key = u.user_key "
                        "WHERE u.user_key = ?",
                        (user_key,),
                    )
                )
            except sqlite3.Error as exc:
                raise StoreError(f"load failed: {type(exc).__name__}") from exc
        if not rows:
            return None, None
        key, language, region, consent, created_at, last_seen, active, state, updated_at = rows[0]
        user = UserRecord(key, language, region, json.loads(consent), float(created_at), float(last_seen), bool(active))
        session = SessionRecord(key, json.loads(state), float(updated_at)) if state is not None else None
        return user, session

    async def save_turn(
        self,
        user: UserRecord,
        session: SessionRecord,
        events: list[EventRecord],
        referrals: list[ReferralRecord],
        *,
        chat_refs: Mapping[str, int] | None = None,
    ) -> None:
        key = user.user_key
        strangers = [r for r in (session, *events, *referrals) if r.user_key != key]
        if strangers:
            raise ValueError(f"save_turn got {len(strangers)} record(s) about another user than the turn's")
        # Encode before the transaction: a value that is not JSON fails here, with nothing begun.
        user_row = (key, user.language, user.region, dumps(user.consent), user.created_at, user.last_seen, int(user.active))
        session_row = (key, dumps(session.state), session.updated_at)
        event_rows = [(key, e.at, e.kind, e.intent, e.risk, e.rule, dumps(list(e.resources))) for e in events]
        referral_rows = [referral_row(r) for r in referrals]
        ref_rows = [(key, purpose, int(chat_id)) for purpose, chat_id in (chat_refs or {}).items()]
        def write(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO users (user_key, language, region, consent, created_at, last_seen, active) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (user_key) DO UPDATE SET language = excluded.language, region = excluded.region, "
                "consent = excluded.consent, last_seen = excluded.last_seen, active = excluded.active",
                user_row,
            )
            db.execute(
                "INSERT INTO sessions (user_key, state, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (user_key) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
                session_row,
            )
            if event_rows:
                db.executemany(
                    "INSERT INTO events (user_key, at, kind, intent, risk, rule, resources) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    event_rows,
                )
            if referral_rows:
                db.executemany(f"INSERT INTO referrals ({REFERRAL_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", referral_rows)
            if ref_rows:
                db.executemany(_UPSERT_CHAT_REF, ref_rows)

        await self._write_in_worker(write)

    async def _write_in_worker(self, work: Callable[[sqlite3.Connection], None]) -> None:
        """Run a whole write transaction in aiosqlite's thread: one hand-off per turn instead of one per statement.

        aiosqlite has no public call for this; `_execute` is the method all its public ones use.
        """
        conn = self._require()

        def transaction() -> None:
            db = conn._conn  # noqa: SLF001 - the sqlite3 connection aiosqlite owns, used on its own thread
            db.execute("BEGIN IMMEDIATE")
            try:
                work(db)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.rollback()
                raise

        async with self._lock:
            try:
                await conn._execute(transaction)  # noqa: SLF001
            except sqlite3.IntegrityError as exc:
                raise ConflictError(f"rolled back: {exc}") from exc
            except sqlite3.Error as exc:
                raise StoreError(f"rolled back: {exc}") from exc

    async def forget(self, user_key: str) -> int:
        deleted = 0
        async with self._transaction(write=True) as conn:
            for table in USER_TABLES:
                cursor = await conn.execute(f"DELETE FROM {table} WHERE user_key = ?", (user_key,))
                deleted += max(cursor.rowcount, 0)
        log.info("forgot a user: %d rows deleted", deleted)
        return deleted

    async def mark_inactive(self, user_key: str) -> None:
        async with self._transaction(write=True) as conn:
            await conn.execute("UPDATE users SET active = 0 WHERE user_key = ?", (user_key,))

    # -- retention and stats -------------------------------------------------------------------

    async def purge_events(self, older_than: float) -> int:
        async with self._transaction(write=True) as conn:
            cursor = await conn.execute("DELETE FROM events WHERE at < ?", (older_than,))
            return max(cursor.rowcount, 0)

    async def purge_referrals(self, older_than: float) -> int:
        finished = sorted(FINISHED_REFERRAL_STATUSES)
        marks = ", ".join("?" for _ in finished)
        async with self._transaction(write=True) as conn:
            rows = list(
                await conn.execute_fetchall(
                    f"SELECT id, user_key FROM referrals WHERE status IN ({marks}) AND updated_at < ?",
                    (*finished, older_than),
                )
            )
            if rows:
                await conn.executemany(
                    "DELETE FROM chat_refs WHERE user_key = ? AND purpose = ?",
                    [(user_key, referral_purpose(id_)) for id_, user_key in rows],
                )
                await conn.executemany("DELETE FROM referrals WHERE id = ?", [(id_,) for id_, _ in rows])
            return len(rows)

    async def stats(self, since: float) -> Stats:
        async with self._transaction(write=False) as conn:
            total, users = list(await conn.execute_fetchall(STATS_TOTALS.format(p="?"), (since,)))[0]
            groups = {name: list(await conn.execute_fetchall(sql.format(p="?"), (since,))) for name, sql in STATS_GROUPS.items()}
        return stats_from(since, total, users, groups)

    # -- chat refs -----------------------------------------------------------------------------

    async def set_chat_ref(self, user_key: str, purpose: str, chat_id: int) -> None:
        async with self._transaction(write=True) as conn:
            await conn.execute(_UPSERT_CHAT_REF, (user_key, purpose, int(chat_id)))

    async def get_chat_ref(self, user_key: str, purpose: str) -> int | None:
        async with self._transaction(write=False) as conn:
            rows = list(
                await conn.execute_fetchall(
                    "SELECT chat_id FROM chat_refs WHERE user_key = ? AND purpose = ?", (user_key, purpose)
                )
            )
        return int(rows[0][0]) if rows else None

    async def delete_chat_ref(self, user_key: str, purpose: str) -> None:
        async with self._transaction(write=True) as conn:
            await conn.execute("DELETE FROM chat_refs WHERE user_key = ? AND purpose = ?", (user_key, purpose))

    # -- live hand-off sessions ----------------------------------------------------------------

    async def open_live_session(self, record: LiveSessionRecord) -> bool:
        try:
            async with self._transaction(write=True) as conn:
                await conn.execute(
                    f"INSERT INTO live_sessions ({_LIVE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (record.user_key, record.org_id, int(record.chat_id), int(record.staff_chat_id),
                     int(record.topic_id), record.opened_at, record.last_staff_at),
                )
        except ConflictError:
            return False
        return True

    async def _live_one(self, where: str, args: tuple[Any, ...]) -> LiveSessionRecord | None:
        async with self._transaction(write=False) as conn:
            rows = list(await conn.execute_fetchall(f"SELECT {_LIVE_COLUMNS} FROM live_sessions WHERE {where}", args))
        return _live_from_row(rows[0]) if rows else None

    async def get_live_session(self, user_key: str) -> LiveSessionRecord | None:
        return await self._live_one("user_key = ?", (user_key,))

    async def live_session_by_topic(self, staff_chat_id: int, topic_id: int) -> LiveSessionRecord | None:
        return await self._live_one("staff_chat_id = ? AND topic_id = ?", (int(staff_chat_id), int(topic_id)))

    async def touch_live_session(self, user_key: str, last_staff_at: float) -> None:
        async with self._transaction(write=True) as conn:
            await conn.execute("UPDATE live_sessions SET last_staff_at = ? WHERE user_key = ?", (last_staff_at, user_key))

    async def close_live_session(self, user_key: str) -> LiveSessionRecord | None:
        async with self._transaction(write=True) as conn:
            rows = list(await conn.execute_fetchall(f"SELECT {_LIVE_COLUMNS} FROM live_sessions WHERE user_key = ?", (user_key,)))
            if not rows:
                return None
            await conn.execute("DELETE FROM live_sessions WHERE user_key = ?", (user_key,))
        return _live_from_row(rows[0])

    # -- referral outbox -----------------------------------------------------------------------

    async def due_referrals(
        self, now: float, limit: int, *, statuses: tuple[str, ...] = RETRYABLE_REFERRAL_STATUSES
    ) -> list[ReferralRecord]:
        unknown = set(statuses) - set(REFERRAL_STATUSES)
        if unknown or not statuses:
            raise ValueError(f"due_referrals: bad statuses {sorted(unknown) or statuses!r}")
        marks = ", ".join("?" for _ in statuses)
        async with self._transaction(write=False) as conn:
            rows = await conn.execute_fetchall(
                f"SELECT {REFERRAL_COLUMNS} FROM referrals WHERE status IN ({marks}) AND next_attempt_at <= ? "
                "ORDER BY next_attempt_at, created_at, id LIMIT ?",
                (*statuses, now, max(int(limit), 0)),
            )
        return [referral_from_row(row) for row in rows]

    async def claim_referrals(
        self, now: float, limit: int, worker_id: str, lease_seconds: float
    ) -> list[ReferralRecord]:
        check_claim(worker_id, lease_seconds)
        limit = max(int(limit), 0)
        if limit == 0:
            return []
        marks = ", ".join("?" for _ in CLAIMABLE_REFERRAL_STATUSES)
        lease_until = float(now) + float(lease_seconds)
        # BEGIN IMMEDIATE takes SQLite's write lock before the SELECT, so another process's claim waits
        # for this one to commit and then no longer sees these rows as due.
        async with self._transaction(write=True) as conn:
            rows = await conn.execute_fetchall(
                f"SELECT {REFERRAL_COLUMNS} FROM referrals WHERE status IN ({marks}) AND next_attempt_at <= ? "
                "ORDER BY next_attempt_at, created_at, id LIMIT ?",
                (*CLAIMABLE_REFERRAL_STATUSES, float(now), limit),
            )
            claimed = [
                dataclasses.replace(
                    referral_from_row(row),
                    status="delivering",
                    next_attempt_at=lease_until,
                    updated_at=float(now),
                    claimed_by=worker_id,
                )
                for row in rows
            ]
            await conn.executemany(
                "UPDATE referrals SET status = 'delivering', next_attempt_at = ?, updated_at = ?, claimed_by = ? "
                "WHERE id = ?",
                [(lease_until, float(now), worker_id, r.id) for r in claimed],
            )
        return claimed

    async def update_referral(
        self,
        referral_id: str,
        *,
        status: str,
        attempts: int | None = None,
        next_attempt_at: float | None = None,
        last_error: str | None = None,
        updated_at: float | None = None,
        if_claimed_by: str | None = None,
    ) -> bool:
        if status not in REFERRAL_STATUSES:
            raise ValueError(f"unknown referral status {status!r}; expected one of {', '.join(REFERRAL_STATUSES)}")
        changes: dict[str, Any] = {"status": status}
        if attempts is not None:
            changes["attempts"] = int(attempts)
        if next_attempt_at is not None:
            changes["next_attempt_at"] = float(next_attempt_at)
        if last_error is not None:
            changes["last_error"] = last_error[:MAX_ERROR_CHARS]
        if updated_at is not None:
            changes["updated_at"] = float(updated_at)
        assignments = ", ".join(f"{column} = ?" for column in changes)
        condition, params = "id = ?", [referral_id]
        if if_claimed_by is not None:
            condition += " AND status = 'delivering' AND claimed_by = ?"
            params.append(if_claimed_by)
        async with self._transaction(write=True) as conn:
            cursor = await conn.execute(
                f"UPDATE referrals SET {assignments} WHERE {condition}", (*changes.values(), *params)
            )
            return cursor.rowcount > 0

    async def get_referral(self, referral_id: str) -> ReferralRecord | None:
        async with self._transaction(write=False) as conn:
            rows = list(
                await conn.execute_fetchall(f"SELECT {REFERRAL_COLUMNS} FROM referrals WHERE id = ?", (referral_id,))
            )
        return referral_from_row(rows[0]) if rows else None


_UPSERT_CHAT_REF = (
    "INSERT INTO chat_refs (user_key, purpose, chat_id) VALUES (?, ?, ?) "
    "ON CONFLICT (user_key, purpose) DO UPDATE SET chat_id = excluded.chat_id"
)

