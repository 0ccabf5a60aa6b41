"""What the scale-out tests share: a real PostgreSQL schema and a real Redis key prefix per test.

- PostgreSQL at ``HUBBOT_TEST_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``): a fresh
  schema ``hubbot_scale_<random>`` per test, reached through the URL's ``?search_path=`` (the form an
  operator uses), dropped with everything in it afterwards.
- Redis at ``HUBBOT_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``): a fresh key prefix
  ``hubbot-test-<random>`` per test; its keys are deleted afterwards.

Neither is ever mocked. When one is not reachable (or its client library is missing) the test is skipped
with the reason; ``HUBBOT_TEST_POSTGRES_REQUIRED=1`` / ``HUBBOT_TEST_REDIS_REQUIRED=1`` make it fail instead.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urlsplit, urlunsplit

import pytest
import pytest_asyncio

from tests.unit.store_support import POSTGRES_REQUIRED_ENV, postgres_unavailable, postgres_url

SHIPPED = Path(__file__).resolve().parents[2]
REDIS_URL_ENV = "HUBBOT_TEST_REDIS_URL"
REDIS_REQUIRED_ENV = "HUBBOT_TEST_REDIS_REQUIRED"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def redis_url() -> str:
    return os.environ.get(REDIS_URL_ENV) or DEFAULT_REDIS_URL


_redis_unavailable: dict[str, str | None] = {}


async def redis_unavailable(url: str) -> str | None:
    """Why Redis cannot be used at `url`, or None when it can (asked once per run)."""
    if url not in _redis_unavailable:
        try:
            import redis.asyncio as redis_asyncio
        except ImportError:
            _redis_unavailable[url] = "the redis package is not installed (pip install -e '.[test]')"
        else:
            client = redis_asyncio.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
            try:
                await client.ping()
                _redis_unavailable[url] = None
            except Exception as exc:  # noqa: BLE001 - any failure means: no Redis here
                _redis_unavailable[url] = (
                    f"Redis is not reachable at {url} ({type(exc).__name__}: {exc}); set {REDIS_URL_ENV} to a Redis the tests may use"
                )
            finally:
                await client.aclose()
    return _redis_unavailable[url]


def _skip_or_fail(reason: str, required_env: str) -> None:
    if os.environ.get(required_env):
        pytest.fail(f"{required_env} is set but {reason}")
    pytest.skip(reason)


def with_search_path(url: str, schema: str) -> str:
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode({"search_path": schema})) if q)
    return urlunsplit(parts._replace(query=query))


@dataclass(frozen=True)
class PgSchema:
    base_url: str  # the server, no search_path
    name: str

    @property
    def url(self) -> str:
        """HUBBOT_DB for every process of the test: the database with search_path = this schema."""
        return with_search_path(self.base_url, self.name)

    async def fetch(self, sql: str, *args: object) -> list[tuple[object, ...]]:
        import asyncpg

        conn = await asyncpg.connect(self.base_url, server_settings={"search_path": self.name})
        try:
            return [tuple(row) for row in await conn.fetch(sql, *args)]
        finally:
            await conn.close()


@pytest_asyncio.fixture
async def pg_schema() -> AsyncIterator[PgSchema]:
    url = postgres_url()
    reason = await postgres_unavailable(url)
    if reason is not None:
        _skip_or_fail(reason, POSTGRES_REQUIRED_ENV)
    import asyncpg

    name = f"hubbot_scale_{secrets.token_hex(6)}"
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f"CREATE SCHEMA {name}")
    finally:
        await conn.close()
    try:
        yield PgSchema(url, name)
    finally:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        finally:
            await conn.close()


@dataclass(frozen=True)
class RedisSpace:
    url: str
    prefix: str

    async def keys(self) -> list[str]:
        import redis.asyncio as redis_asyncio

        client = redis_asyncio.Redis.from_url(self.url, decode_responses=True)
        try:
            return [key async for key in client.scan_iter(match=f"{self.prefix}:*", count=1000)]
        finally:
            await client.aclose()


@pytest_asyncio.fixture
async def redis_space() -> AsyncIterator[RedisSpace]:
    url = redis_url()
    reason = await redis_unavailable(url)
    if reason is not None:
        _skip_or_fail(reason, REDIS_REQUIRED_ENV)
    space = RedisSpace(url, f"hubbot-test-{secrets.token_hex(5)}")
    try:
        yield space
    finally:
        import redis.asyncio as redis_asyncio

        client = redis_asyncio.Redis.from_url(url, decode_responses=True)
        try:
            keys = await space.keys()
            for start in range(0, len(keys), 500):
                await client.delete(*keys[start : start + 500])
        finally:
            await client.aclose()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
