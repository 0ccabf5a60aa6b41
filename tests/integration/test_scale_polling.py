"""Polling is for one process: a second `hubbot run` polling the same bot refuses to run, and says why.

Telegram (and the tests' Bot API server) answers 409 Conflict to a getUpdates that competes with
another; the instance that was polling first keeps polling and answering.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from bot.reload import ContentHolder
from bot.settings import Settings
from bot.store import SqliteStore
from bot.telegram.runner import TelegramService
from tests.fakes import FakeBotAPI
from tests.fakes.fixtures import close_bot
from tests.integration.scale_support import SHIPPED, free_port

CRISIS = "i want to die"


async def test_a_second_polling_instance_exits_with_a_clear_message(bot_api: FakeBotAPI, tmp_path: Path):
    holder = ContentHolder(SHIPPED)
    holder.load()
    settings = Settings(  # type: ignore[call-arg]
        BOT_TOKEN=bot_api.token, TELEGRAM_API_BASE=bot_api.base_url, HUBBOT_DB=str(tmp_path / "first.sqlite3"),
        HUBBOT_HASH_KEY="test-key", HUBBOT_LISTEN="127.0.0.1:0", HUBBOT_CONTENT=str(SHIPPED),
    )
    store = SqliteStore(settings.db)
    await store.open()
    # The first instance has been polling for a while (its start-up window is over).
    first = TelegramService(settings, holder, store, bot_api.make_bot(), polling_timeout=1, conflict_window=0)
    await first.start()
    env = {
        **os.environ,
        "BOT_TOKEN": bot_api.token,
        "TELEGRAM_API_BASE": bot_api.base_url,
        "HUBBOT_DB": str(tmp_path / "second.sqlite3"),
        "HUBBOT_HASH_KEY": "test-key",
        "HUBBOT_LISTEN": f"127.0.0.1:{free_port()}",
        "HUBBOT_CONTENT": str(SHIPPED),
    }
    second = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "run", env=env, cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        code = await asyncio.wait_for(second.wait(), 30)
        _, stderr = await second.communicate()
        text = stderr.decode()
        assert code == 1, text[-2000:]
        assert "another instance is already polling this bot" in text
        assert "409" in text and "webhook mode" in text and "Stop the other instance" in text
        assert first.poller is not None and first.poller.conflicts >= 1  # it met the newcomer's poll ...
        assert not first.failed.is_set()  # ... and kept going
        bot_api.push_message(1701, CRISIS)
        [reply] = await bot_api.wait_for_sent(1, chat_id=1701, timeout=10)
        assert "988" in reply["text"]
    finally:
        if second.returncode is None:
            second.kill()
            await second.wait()
        await first.stop()
        await store.close()
        await close_bot(first.bot)
