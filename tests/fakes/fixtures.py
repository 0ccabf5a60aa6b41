"""pytest fixtures for the fake Bot API.

Use in a test module::

    from tests.fakes.fixtures import api_bot, bot_api  # noqa: F401  (pytest fixtures)

or make them global by adding to ``tests/conftest.py``::

    pytest_plugins = ["tests.fakes.fixtures"]

``tests.fakes`` is importable when pytest runs from the repository root with
``python -m pytest`` (the root is on ``sys.path``); for a bare ``pytest`` add
``pythonpath = ["."]`` to ``[tool.pytest.ini_options]``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio

from .bot_api import FakeBotAPI


@pytest_asyncio.fixture
async def bot_api() -> AsyncIterator[FakeBotAPI]:
    """A started fake Bot API server on 127.0.0.1 (random port), stopped after the test."""
    server = FakeBotAPI()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest_asyncio.fixture
async def api_bot(bot_api: FakeBotAPI) -> AsyncIterator[Any]:
    """A real aiogram ``Bot`` talking to ``bot_api``; its HTTP session is closed after the test."""
    bot = bot_api.make_bot()
    try:
        yield bot
    finally:
        await close_bot(bot)


async def close_bot(bot: Any) -> None:
    """Close a Bot's HTTP session without aiogram's 250 ms TLS grace sleep (plain HTTP here)."""
    client = getattr(bot.session, "_session", None)
    if client is not None and not client.closed:
        await client.close()
    else:
        await bot.session.close()
