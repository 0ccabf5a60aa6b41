"""The Store on PostgreSQL (an asyncpg pool): several bot processes share one database, one transaction per call.

asyncpg is optional (`pip install 'hubbot[scale]'`) and imported only when a PostgresStore is made.
The schema is the one `bot.store.migrations` defines for both engines; it lands in the connection's
current schema (`search_path`), which the `schema` argument sets for every pooled connection.

Privacy note: a deleted row is gone for every query at once, but PostgreSQL (MVCC) keeps its bytes in
the table's pages until VACUUM reclaims them and new rows overwrite them; SQLite's `secure_delete` has
no PostgreSQL equivalent. Run autovacuum (the default) and encrypt the database's disk.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from types import ModuleType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from bot.store.base import ConflictError, MissingDriverError, Store, StoreError
from bot.store.migrations import USER_TABLES, SchemaTooNewError, apply_postgres_migrations
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

if TYPE_CHECKING:
    import asyncpg

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0
COMMAND_TIMEOUT_S = 30.0
HEALTH_TIMEOUT_S = 5.0
CLOSE_TIMEOUT_S = 10.0

ASYNCPG_MISSING = (
    "HUBBOT_DB is a PostgreSQL URL but the asyncpg driver is not installed; "
    "install the scale extra: pip install 'hubbot[scale]'"
)

# `id COLLATE "C"`: ties broken by id in byte order, as SQLite does, whatever the database's collation.
_DUE_ORDER = 'next_attempt_at, created_at, id COLLATE "C"'
_R_REFERRAL_COLUMNS = ", ".join(f"r.{column.strip()}" for column in REFERRAL_COLUMNS.split(","))


def import_asyncpg() -> ModuleType:
    """asyncpg, or a MissingDriverError that says which extra to install."""
    try:
        import asyncpg
    except ImportError as exc:
        raise MissingDriverError(ASYNCPG_MISSING, name="asyncpg") from exc
    return asyncpg


def redact_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.rsplit("@", 1)[1]
        user = parts.username or ""
        return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))
    except ValueError:
        return "<unparsable PostgreSQL URL>"


def describe_error(exc: BaseException) -> str:
    """What failed, without the values involved: PostgreSQL's DETAIL ("Key (id)=(...) already exists") and
    asyncpg's argument errors quote the data, which may be about a person. Names of tables and
    constraints are kept; they are what an operator needs."""
    name = type(exc).__name__
    sqlstate = getattr(exc, "sqlstate", None)
    if sqlstate:
        where = [f"{label} {value}" for label in ("table", "constraint")
                 if (value := getattr(exc, f"{label}_name", None))]
        return f"{name} (SQLSTATE {', '.join([sqlstate, *where])})"
    if isinstance(exc, (OSError, TimeoutError)):
        return f"{name}: {exc}"
    return name


def _rowcount(status: str) -> int:
    """The row count of a command status such as 'DELETE 3' or 'UPDATE 0'."""
    try:
        return int(status.rsplit(" ", 1)[-1])
    except (ValueError, IndexError):
        return 0


class PostgresStore(Store):
    """A pool of asyncpg connections; every method runs in its own transaction on one pooled connection.

    Writes use READ COMMITTED, reads a read-only REPEATABLE READ snapshot (load and stats see one moment).
    Several processes may open the same database: migrations take an advisory lock, and
    claim_referrals uses `FOR UPDATE SKIP LOCKED` so each due referral goes to exactly one worker.
    """

    def __init__(self, url: str, *, schema: str | None = None, min_size: int = 1, max_size: int = 10) -> None:
        self._asyncpg = import_asyncpg()
        self.url = url
        self.schema = schema
        self.min_size = min_size
        self.max_size = max_size
        self._pool: asyncpg.Pool[Any] | None = None
        self.migrations_applied: list[int] = []  # what the last open() applied (empty: the schema was current)
        pg = self._asyncpg
        self._database_errors: tuple[type[BaseException], ...] = (
            pg.PostgresError,
            pg.InterfaceError,
            OSError,
            TimeoutError,
        )

    def __repr__(self) -> str:
        return f"PostgresStore({redact_url(self.url)!r}, schema={self.schema!r})"

    # -- lifecycle -----------------------------------------------------------------------------

    async def open(self) -> None:
        if self._pool is not None:
            return
        where = redact_url(self.url) + (f" (schema {self.schema})" if self.schema else "")
        try:
            pool = await self._asyncpg.create_pool(
                self.url,
                min_size=self.min_size,
                max_size=self.max_size,
                timeout=CONNECT_TIMEOUT_S,
                command_timeout=COMMAND_TIMEOUT_S,
                # A startup parameter, not a SET: the pool's RESET ALL on release keeps it.
                server_settings={"search_path": self.schema} if self.schema else None,
            )
        except self._database_errors as exc:
            # At connect time the server's message is about the setup ("database ... does not exist"), never a person.
            message = getattr(exc, "message", None) or str(exc)
            raise StoreError(f"cannot connect to PostgreSQL at {where}: {type(exc).__name__}: {message}") from exc
        try:
            async with pool.acquire() as conn:
                self.migrations_applied = await apply_postgres_migrations(conn)
        except SchemaTooNewError as exc:
            await pool.close()
            raise StoreError(str(exc)) from exc
        except BaseException as exc:
            pool.terminate()
            if isinstance(exc, self._database_errors):
                message = getattr(exc, "message", None) or str(exc)
                raise StoreError(f"cannot prepare the database at {where}: {type(exc).__name__}: {message}") from exc
            raise
        self._pool = pool

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), CLOSE_TIMEOUT_S)  # waits for the calls in flight
        except TimeoutError:
            log.warning("PostgreSQL pool did not close within %.0f s; terminating its connections", CLOSE_TIMEOUT_S)
            pool.terminate()

    async def healthy(self) -> bool:
        pool = self._pool
        if pool is None:
            return False
        try:
            return await asyncio.wait_for(pool.fetchval("SELECT 1"), HEALTH_TIMEOUT_S) == 1
        except Exception:  # noqa: BLE001 - a health check reports, it never raises
            return False

    # -- transactions --------------------------------------------------------------------------

    def _require(self) -> asyncpg.Pool[Any]:
        if self._pool is None:
            raise StoreError("the store is not open")
        return self._pool

    @asynccontextmanager
    async def _transaction(self, *, write: bool) -> AsyncIterator[asyncpg.Connection[Any]]:
        """One pooled connection in one transaction: COMMIT at the end, ROLLBACK on any error."""
        pool = self._require()
        try:
            async with pool.acquire() as conn:
                isolation = "read_committed" if write else "repeatable_read"
                async with conn.transaction(isolation=isolation, readonly=not write):
                    yield conn
        except self._asyncpg.IntegrityConstraintViolationError as exc:
            raise ConflictError(f"rolled back: {describe_error(exc)}") from exc
        except self._database_errors as exc:
            raise StoreError(f"rolled back: {describe_error(exc)}") from exc

    # -- users and sessions --------------------------------------------------------------------

    async def load(self, user_key: str) -> tuple[UserRecord | None, SessionRecord | None]:
        async with self._transaction(write=False) as conn:
            user_row = await conn.fetchrow(
                "SELECT user_key, language, region, consent, created_at, last_seen, active "
                "FROM users WHERE user_key = $1",
                user_key,
            )
            session_row = await conn.fetchrow(
                "SELECT user_key, state, updated_at FROM sessions WHERE user_key = $1", user_key
            )
        user = None
        if user_row is not None:
            key, language, region, consent, created_at, last_seen, active = user_row
            user = UserRecord(key, language, region, json.loads(consent), float(created_at), float(last_seen), bool(active))
        session = None
        if session_row is not None:
            key, state, updated_at = session_row
            session = SessionRecord(key, json.loads(state), float(updated_at))
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
        user_row = (key, user.language, user.region, dumps(user.consent), float(user.created_at),
                    float(user.last_seen), int(user.active))
        session_row = (key, dumps(session.state), float(session.updated_at))
        event_rows = [(key, float(e.at), e.kind, e.intent, e.risk, e.rule, dumps(list(e.resources))) for e in events]
        referral_rows = [referral_row(r) for r in referrals]
        ref_rows = [(key, purpose, int(chat_id)) for purpose, chat_id in (chat_refs or {}).items()]
        async with self._transaction(write=True) as conn:
            await conn.execute(
                "INSERT INTO users (user_key, language, region, consent, created_at, last_seen, active) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7) "
                "ON CONFLICT (user_key) DO UPDATE SET language = excluded.language, region = excluded.region, "
                "consent = excluded.consent, last_seen = excluded.last_seen, active = excluded.active",
                *user_row,
            )
            await conn.execute(
                "INSERT INTO sessions (user_key, state, updated_at) VALUES ($1, $2, $3) "
                "ON CONFLICT (user_key) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
                *session_row,
            )
            if event_rows:
                await conn.executemany(
                    "INSERT INTO events (user_key, at, kind, intent, risk, rule, resources) "
                    "VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    event_rows,
                )
            if referral_rows:
                await conn.executemany(
                    f"INSERT INTO referrals ({REFERRAL_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                    referral_rows,
                )
            if ref_rows:
                await conn.executemany(_UPSERT_CHAT_REF, ref_rows)

    async def forget(self, user_key: str) -> int:
        deleted = 0
        async with self._transaction(write=True) as conn:
            for table in USER_TABLES:
                deleted += _rowcount(await conn.execute(f"DELETE FROM {table} WHERE user_key = $1", user_key))
        log.info("forgot a user: %d rows deleted", deleted)
        return deleted

    async def mark_inactive(self, user_key: str) -> None:
        async with self._transaction(write=True) as conn:
            await conn.execute("UPDATE users SET active = 0 WHERE user_key = $1", user_key)

    # -- retention and stats -------------------------------------------------------------------

    async def purge_events(self, older_than: float) -> int:
        async with self._transaction(write=True) as conn:
            return _rowcount(await conn.execute("DELETE FROM events WHERE at < $1", float(older_than)))

    async def purge_referrals(self, older_than: float) -> int:
        async with self._transaction(write=True) as conn:
            rows = await conn.fetch(
                "DELETE FROM referrals WHERE status = ANY($1::text[]) AND updated_at < $2 RETURNING id, user_key",
                sorted(FINISHED_REFERRAL_STATUSES),
                float(older_than),
            )
            if rows:
                await conn.execute(
                    "DELETE FROM chat_refs WHERE (user_key, purpose) IN "
                    "(SELECT * FROM unnest($1::text[], $2::text[]))",
                    [row["user_key"] for row in rows],
                    [referral_purpose(row["id"]) for row in rows],
                )
            return len(rows)

    async def stats(self, since: float) -> Stats:
        since = float(since)
        async with self._transaction(write=False) as conn:
            total, users = await conn.fetchrow(STATS_TOTALS.format(p="$1"), since)
            groups = {name: list(await conn.fetch(sql.format(p="$1"), since)) for name, sql in STATS_GROUPS.items()}
        return stats_from(since, total, users, groups)

    # -- chat refs -----------------------------------------------------------------------------

    async def set_chat_ref(self, user_key: str, purpose: str, chat_id: int) -> None:
        async with self._transaction(write=True) as conn:
            await conn.execute(_UPSERT_CHAT_REF, user_key, purpose, int(chat_id))

    async def get_chat_ref(self, user_key: str, purpose: str) -> int | None:
        async with self._transaction(write=False) as conn:
            chat_id = await conn.fetchval(
                "SELECT chat_id FROM chat_refs WHERE user_key = $1 AND purpose = $2", user_key, purpose
            )
        return None if chat_id is None else int(chat_id)

    async def delete_chat_ref(self, user_key: str, purpose: str) -> None:
        async with self._transaction(write=True) as conn:
            await conn.execute("DELETE FROM chat_refs WHERE user_key = $1 AND purpose = $2", user_key, purpose)

    # -- live hand-off sessions ----------------------------------------------------------------

    async def open_live_session(self, record: LiveSessionRecord) -> bool:
        try:
            async with self._transaction(write=True) as conn:
                await conn.execute(
                    f"INSERT INTO live_sessions ({_LIVE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    record.user_key, record.org_id, int(record.chat_id), int(record.staff_chat_id),
                    int(record.topic_id), record.opened_at, record.last_staff_at,
                )
        except ConflictError:
            return False
        return True

    async def get_live_session(self, user_key: str) -> LiveSessionRecord | None:
        async with self._transaction(write=False) as conn:
            row = await conn.fetchrow(f"SELECT {_LIVE_COLUMNS} FROM live_sessions WHERE user_key = $1", user_key)
        return None if row is None else _live_from_row(tuple(row))

    async def live_session_by_topic(self, staff_chat_id: int, topic_id: int) -> LiveSessionRecord | None:
        async with self._transaction(write=False) as conn:
            row = await conn.fetchrow(
                f"SELECT {_LIVE_COLUMNS} FROM live_sessions WHERE staff_chat_id = $1 AND topic_id = $2",
                int(staff_chat_id), int(topic_id),
            )
        return None if row is None else _live_from_row(tuple(row))

    async def touch_live_session(self, user_key: str, last_staff_at: float) -> None:
        async with self._transaction(write=True) as conn:
            await conn.execute("UPDATE live_sessions SET last_staff_at = $1 WHERE user_key = $2", last_staff_at, user_key)

    async def close_live_session(self, user_key: str) -> LiveSessionRecord | None:
        async with self._transaction(write=True) as conn:
            row = await conn.fetchrow(f"DELETE FROM live_sessions WHERE user_key = $1 RETURNING {_LIVE_COLUMNS}", user_key)
        return None if row is None else _live_from_row(tuple(row))

    # -- referral outbox -----------------------------------------------------------------------

    async def due_referrals(
        self, now: float, limit: int, *, statuses: tuple[str, ...] = RETRYABLE_REFERRAL_STATUSES
    ) -> list[ReferralRecord]:
        unknown = set(statuses) - set(REFERRAL_STATUSES)
        if unknown or not statuses:
            raise ValueError(f"due_referrals: bad statuses {sorted(unknown) or statuses!r}")
        async with self._transaction(write=False) as conn:
            rows = await conn.fetch(
                f"SELECT {REFERRAL_COLUMNS} FROM referrals WHERE status = ANY($1::text[]) AND next_attempt_at <= $2 "
                f"ORDER BY {_DUE_ORDER} LIMIT $3",
                list(statuses),
                float(now),
                max(int(limit), 0),
            )
        return [referral_from_row(row) for row in rows]

    async def claim_referrals(
        self, now: float, limit: int, worker_id: str, lease_seconds: float
    ) -> list[ReferralRecord]:
        check_claim(worker_id, lease_seconds)
        limit = max(int(limit), 0)
        if limit == 0:
            return []
        now = float(now)
        # One statement: lock the due rows no other transaction holds (SKIP LOCKED: a concurrent claimer
        # takes the next ones instead of waiting), and move them to `delivering` under this worker's lease.
        # A row another worker claimed and committed meanwhile is re-checked against the WHERE clause
        # (its lease is in the future) and left out.
        async with self._transaction(write=True) as conn:
            rows = await conn.fetch(
                f"""WITH due AS (
                        SELECT id, next_attempt_at AS due_at FROM referrals
                        WHERE status = ANY($1::text[]) AND next_attempt_at <= $2
                        ORDER BY {_DUE_ORDER}
                        LIMIT $3
                        FOR UPDATE SKIP LOCKED
                    )
                    UPDATE referrals AS r
                    SET status = 'delivering', next_attempt_at = $4, updated_at = $2, claimed_by = $5
                    FROM due WHERE r.id = due.id
                    RETURNING {_R_REFERRAL_COLUMNS}, due.due_at""",
                list(CLAIMABLE_REFERRAL_STATUSES),
                now,
                limit,
                now + float(lease_seconds),
                worker_id,
            )
        # RETURNING has no order: put them back in the order they were due.
        ordered = sorted(rows, key=lambda row: (row["due_at"], row["created_at"], row["id"]))
        return [referral_from_row(row) for row in ordered]

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
        params: list[Any] = [*changes.values(), referral_id]
        assignments = ", ".join(f"{column} = ${n}" for n, column in enumerate(changes, start=1))
        condition = f"id = ${len(params)}"
        if if_claimed_by is not None:
            params.append(if_claimed_by)
            condition += f" AND status = 'delivering' AND claimed_by = ${len(params)}"
        async with self._transaction(write=True) as conn:
            status_line = await conn.execute(f"UPDATE referrals SET {assignments} WHERE {condition}", *params)
        return _rowcount(status_line) > 0

    async def get_referral(self, referral_id: str) -> ReferralRecord | None:
        async with self._transaction(write=False) as conn:
            row = await conn.fetchrow(f"SELECT {REFERRAL_COLUMNS} FROM referrals WHERE id = $1", referral_id)
        return None if row is None else referral_from_row(row)


_UPSERT_CHAT_REF = (
    "INSERT INTO chat_refs (user_key, purpose, chat_id) VALUES ($1, $2, $3) "
    "ON CONFLICT (user_key, purpose) DO UPDATE SET chat_id = excluded.chat_id"
)

