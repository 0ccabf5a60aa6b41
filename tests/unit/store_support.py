"""The `backend` and `store` fixtures that run a store test on SQLite and on PostgreSQL, and raw access under a store.

Use in a test module::

    from tests.unit.store_support import backend, store  # noqa: F401  (pytest fixtures)

`backend` is parametrised over ``sqlite`` and ``postgres``:

- sqlite: a fresh file in the test's tmp_path.
- postgres: a fresh schema ``hubbot_test_<random>`` in the database at ``HUBBOT_TEST_POSTGRES_URL``
  (default ``postgresql://postgres@127.0.0.1:5432/test``), created before the test and dropped with
  everything in it afterwards. Every store the test makes gets ``search_path`` = that schema, so tests
  never see each other's tables. When asyncpg is missing or the server does not answer, the postgres
  cases are skipped with the reason (set ``HUBBOT_TEST_POSTGRES_REQUIRED=1`` to fail them instead,
  e.g. in a CI job that provides PostgreSQL).

`store` is an opened store on that backend, closed after the test. A Backend also reads the tables
directly (rows, columns, schema, versions), so a test can check what really landed, and makes more
stores on the same database (other processes, other workers).
"""

from __future__ import annotations

import os
import re
import secrets
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.store import SqliteStore, Store
from bot.store.migrations import apply_migrations, apply_postgres_migrations

POSTGRES_URL_ENV = "HUBBOT_TEST_POSTGRES_URL"
POSTGRES_REQUIRED_ENV = "HUBBOT_TEST_POSTGRES_REQUIRED"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
BACKENDS = ("sqlite", "postgres")

Row = tuple[Any, ...]


class Backend(ABC):
    """One database under test; SQL given to it uses `?` placeholders on both engines."""

    name: str

    @abstractmethod
    def make_store(self, **options: Any) -> Store:
        """A new, unopened store on this database (another process or worker, as far as it can tell)."""

    @abstractmethod
    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        """Rows of a query run outside any store."""

    @abstractmethod
    async def execute(self, sql: str, *args: Any) -> None:
        """A statement run (and committed) outside any store."""

    @abstractmethod
    async def tables(self) -> list[str]:
        """Every table in the database (this test's schema on PostgreSQL)."""

    @abstractmethod
    async def columns(self) -> set[tuple[str, str]]:
        """(table, column) for every column of every table."""

    @abstractmethod
    async def schema(self) -> list[Row]:
        """A comparable picture of the schema: tables, columns, indexes, constraints."""

    @abstractmethod
    async def apply_migrations(self, target: int) -> list[int]:
        """Run the migration runner on a raw connection up to `target`."""

    async def raw_rows(self) -> dict[str, list[Row]]:
        """Every row of every table (the catalogue lists them, so a table added later is covered too)."""
        return {table: sorted(await self.fetch(f"SELECT * FROM {table}"), key=repr) for table in await self.tables()}

    async def versions(self) -> list[int]:
        return [int(v) for (v,) in await self.fetch("SELECT version FROM schema_version ORDER BY version")]


class SqliteBackend(Backend):
    name = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path

    def make_store(self, **options: Any) -> Store:
        return SqliteStore(self.path, **options)

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        with sqlite3.connect(self.path) as conn:
            return [tuple(row) for row in conn.execute(sql, args).fetchall()]

    async def execute(self, sql: str, *args: Any) -> None:
        with sqlite3.connect(self.path) as conn:
            conn.execute(sql, args)

    async def tables(self) -> list[str]:
        return [name for (name,) in await self.fetch(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]

    async def columns(self) -> set[tuple[str, str]]:
        return {(t, col[1]) for t in await self.tables() for col in await self.fetch(f"PRAGMA table_info({t})")}

    async def schema(self) -> list[Row]:
        return await self.fetch("SELECT type, name, sql FROM sqlite_master ORDER BY name")

    async def apply_migrations(self, target: int) -> list[int]:
        import aiosqlite

        async with aiosqlite.connect(self.path, isolation_level=None) as conn:
            return await apply_migrations(conn, target=target)


class PostgresBackend(Backend):
    name = "postgres"

    def __init__(self, url: str, schema_name: str) -> None:
        self.url = url
        self.schema_name = schema_name

    def make_store(self, **options: Any) -> Store:
        from bot.store.postgres import PostgresStore

        options.setdefault("max_size", 4)
        return PostgresStore(self.url, schema=self.schema_name, **options)

    async def _connect(self) -> Any:
        import asyncpg

        return await asyncpg.connect(self.url, server_settings={"search_path": self.schema_name})

    @staticmethod
    def _numbered(sql: str) -> str:
        counter = iter(range(1, sql.count("?") + 1))
        return re.sub(r"\?", lambda _: f"${next(counter)}", sql)

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        conn = await self._connect()
        try:
            return [tuple(row) for row in await conn.fetch(self._numbered(sql), *args)]
        finally:
            await conn.close()

    async def execute(self, sql: str, *args: Any) -> None:
        conn = await self._connect()
        try:
            await conn.execute(self._numbered(sql), *args)
        finally:
            await conn.close()

    async def tables(self) -> list[str]:
        return [name for (name,) in await self.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ? AND table_type = 'BASE TABLE' "
            "ORDER BY table_name", self.schema_name)]

    async def columns(self) -> set[tuple[str, str]]:
        return {(str(t), str(c)) for t, c in await self.fetch(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = ?", self.schema_name)}

    async def schema(self) -> list[Row]:
        return await self.fetch(
            """SELECT 'column', table_name || '.' || column_name,
                      data_type || ' ' || is_nullable || ' ' || COALESCE(column_default, '')
               FROM information_schema.columns WHERE table_schema = ?
               UNION ALL
               SELECT 'index', indexname, indexdef FROM pg_indexes WHERE schemaname = ?
               UNION ALL
               SELECT 'constraint', conrelid::regclass::text || '.' || conname, pg_get_constraintdef(oid)
               FROM pg_constraint WHERE connamespace = ?::regnamespace
               ORDER BY 1, 2""",
            self.schema_name, self.schema_name, self.schema_name)

    async def apply_migrations(self, target: int) -> list[int]:
        conn = await self._connect()
        try:
            return await apply_postgres_migrations(conn, target=target)
        finally:
            await conn.close()


def postgres_url() -> str:
    return os.environ.get(POSTGRES_URL_ENV) or DEFAULT_POSTGRES_URL


_unavailable: dict[str, str | None] = {}  # url -> why PostgreSQL cannot be used (None: it can); asked once per run


async def postgres_unavailable(url: str) -> str | None:
    """Why the postgres cases cannot run against `url`, or None when they can."""
    if url not in _unavailable:
        from bot.store.postgres import redact_url

        try:
            import asyncpg
        except ImportError:
            _unavailable[url] = "asyncpg is not installed (pip install -e '.[test]')"
        else:
            try:
                conn = await asyncpg.connect(url, timeout=3)
                await conn.close()
                _unavailable[url] = None
            except Exception as exc:  # noqa: BLE001 - any failure means: no PostgreSQL here
                _unavailable[url] = (
                    f"PostgreSQL is not reachable at {redact_url(url)} ({type(exc).__name__}: {exc}); "
                    f"set {POSTGRES_URL_ENV} to a server the tests may create schemas in"
                )
    return _unavailable[url]


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "sqlite":
        yield SqliteBackend(tmp_path / "hub.sqlite3")
        return
    url = postgres_url()
    reason = await postgres_unavailable(url)
    if reason is not None:
        if os.environ.get(POSTGRES_REQUIRED_ENV):
            pytest.fail(f"{POSTGRES_REQUIRED_ENV} is set but {reason}")
        pytest.skip(reason)
    import asyncpg

    schema_name = f"hubbot_test_{secrets.token_hex(6)}"
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f"CREATE SCHEMA {schema_name}")
    finally:
        await conn.close()
    try:
        yield PostgresBackend(url, schema_name)
    finally:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(f"DROP SCHEMA IF EXISTS {schema_name} CASCADE")
        finally:
            await conn.close()


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Store]:
    async with backend.make_store() as opened:
        yield opened
