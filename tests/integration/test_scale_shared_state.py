"""Scale-out, in one process: two `TelegramService` replicas in webhook mode sharing a real Redis.

Each piece that moves to Redis with HUBBOT_REDIS_URL is checked where a per-process version would give
a different, visible answer: dedup of one update sent to both replicas, a chat locked across replicas,
one flood allowance per person whichever replica a message lands on, content-reload notices, no raw
Telegram id in a Redis key, and the bot still answering (crisis lines included) when Redis is away.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest_asyncio

from bot.reload import ContentHolder
from bot.settings import Settings
from bot.store import SqliteStore
from bot.telegram.http import WEBHOOK_PATH
from bot.telegram.runner import TelegramService
from tests.fakes import FakeBotAPI
from tests.fakes.bot_api import WebhookReply, post_webhook_update
from tests.fakes.fixtures import close_bot
from tests.integration.scale_support import SHIPPED, RedisSpace, free_port, redis_space  # noqa: F401 (fixture)

SECRET = "scale-Secret_token"
CRISIS = "i want to die"
CHATTY = ("hi there", "good morning bot", "hello bot, you there?", "sup bot", "hiya, how are you")

Start = Callable[..., Awaitable[TelegramService]]


@pytest_asyncio.fixture
async def holder() -> ContentHolder:
    loaded = ContentHolder(SHIPPED)
    loaded.load()
    return loaded


def shared_state(url: str, prefix: str) -> Any:
    from bot.telegram.shared_state import SharedState

    return SharedState(url, prefix=prefix, hash_key=b"test-key")


@pytest_asyncio.fixture
async def start_replica(bot_api: FakeBotAPI, tmp_path: Path, holder: ContentHolder) -> AsyncIterator[Start]:
    """Start a replica (webhook mode) on the given Redis; all replicas of a test share one SQLite store."""
    store = SqliteStore(str(tmp_path / "shared.sqlite3"))
    await store.open()
    started: list[TelegramService] = []

    async def start(url: str, prefix: str, **kwargs: Any) -> TelegramService:
        settings = Settings(  # type: ignore[call-arg]
            BOT_TOKEN=bot_api.token,
            TELEGRAM_API_BASE=bot_api.base_url,
            HUBBOT_DB=str(tmp_path / "shared.sqlite3"),
            HUBBOT_HASH_KEY="test-key",
            HUBBOT_LISTEN="127.0.0.1:0",
            HUBBOT_CONTENT=str(SHIPPED),
            HUBBOT_WEBHOOK_URL="https://hubbot.example.org/telegram/webhook",
            HUBBOT_WEBHOOK_SECRET=SECRET,
        )
        service = TelegramService(settings, holder, store, bot_api.make_bot(), webhook=True, shared=shared_state(url, prefix), **kwargs)
        started.append(service)
        await service.start()
        return service

    yield start
    for service in started:
        await service.stop()
        assert service.shared is not None
        await service.shared.close()
        await close_bot(service.bot)
    await store.close()


async def post(service: TelegramService, update: dict[str, Any]) -> WebhookReply:
    return await post_webhook_update(service.base_url + WEBHOOK_PATH, update, SECRET, timeout=30)


async def test_one_update_sent_to_two_replicas_is_answered_once(redis_space: RedisSpace, bot_api, start_replica):
    a = await start_replica(redis_space.url, redis_space.prefix)
    b = await start_replica(redis_space.url, redis_space.prefix)
    update = bot_api.make_message_update(918273601, CRISIS)
    first, second = await asyncio.gather(post(a, update), post(b, update))
    assert (first.status, second.status) == (200, 200)  # both answered only after the update was handled
    [reply] = bot_api.sent_to(918273601)
    assert "988" in reply["text"]
    late = await post(b, update)  # a redelivery long after
    assert late.status == 200
    await asyncio.sleep(0.2)
    assert len(bot_api.sent_to(918273601)) == 1
    assert a.metrics.duplicates + b.metrics.duplicates == 2
    assert a.metrics.replies + b.metrics.replies == 1


async def test_a_chat_is_handled_by_one_replica_at_a_time_in_order(redis_space: RedisSpace, bot_api, start_replica):
    a = await start_replica(redis_space.url, redis_space.prefix)
    b = await start_replica(redis_space.url, redis_space.prefix)
    chat = 918273602
    bot_api.stall_next("sendMessage", 1.0)  # replica a is slow to send the first reply
    first = asyncio.create_task(post(a, bot_api.make_message_update(chat, CRISIS)))
    for _ in range(300):
        if bot_api.calls_to("sendMessage"):
            break
        await asyncio.sleep(0.01)
    assert bot_api.calls_to("sendMessage"), "replica a never started its reply"
    second = await post(b, bot_api.make_message_update(chat, "/menu"))  # reaches b while a holds the chat
    assert second.status == 200 and first.done()  # b waited for a
    sent = bot_api.sent_to(chat)
    assert len(sent) == 2
    assert "988" in sent[0]["text"]  # the crisis reply first ...
    assert sent[1]["text"].startswith("What would you like to look at?")  # ... then the menu


async def test_flood_allowance_is_one_per_person_across_replicas(redis_space: RedisSpace, bot_api, start_replica):
    now = [1_000_000.0]
    replicas = [
        await start_replica(redis_space.url, redis_space.prefix, flood_capacity=3, flood_clock=lambda: now[0]) for _ in range(2)
    ]
    chat = 918273603
    for number, text in enumerate(CHATTY):  # alternate replicas: each one alone sees at most 3
        assert (await post(replicas[number % 2], bot_api.make_message_update(chat, text))).status == 200
    assert len(bot_api.sent_to(chat)) == 3  # one bucket of 3 for the person, not 3 per replica
    await post(replicas[1], bot_api.make_message_update(chat, CRISIS))  # never throttled
    sent = bot_api.sent_to(chat)
    assert len(sent) == 4 and "988" in sent[3]["text"]
    now[0] += 2.0  # two tokens back
    for text in CHATTY[:3]:
        await post(replicas[0], bot_api.make_message_update(chat, text))
    assert len(bot_api.sent_to(chat)) == 6
    assert sum(r.metrics.throttled for r in replicas) == 3
    keys = await redis_space.keys()
    assert any(":flood:" in key for key in keys) and any(":update:" in key for key in keys)
    assert not [key for key in keys if str(chat) in key]  # no raw Telegram id in Redis


async def test_replicas_keep_answering_when_redis_is_away(bot_api, start_replica):
    down = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    a = await start_replica(down, "hubbot-test-down")
    chat = 918273604
    update = bot_api.make_message_update(chat, CRISIS)
    assert (await post(a, update)).status == 200
    [reply] = bot_api.sent_to(chat)
    assert "988" in reply["text"]
    assert (await post(a, update)).status == 200  # this process's own dedup still works
    await asyncio.sleep(0.2)
    assert len(bot_api.sent_to(chat)) == 1
    async with aiohttp.ClientSession() as http, http.get(a.base_url + "/healthz") as response:
        body = await response.json()
    assert response.status == 200 and body["redis"] == "unreachable" and body["shared_state"] == "redis"


async def test_a_reload_on_one_replica_reaches_the_others(tmp_path: Path, redis_space: RedisSpace):
    from bot.telegram.shared_state import ContentSync

    content = tmp_path / "content"
    shutil.copytree(SHIPPED / "intents", content / "intents")
    shutil.copy(SHIPPED / "resources.yaml", content / "resources.yaml")
    frozen = lambda: 0.0  # noqa: E731 - neither holder ever looks at its files by itself
    holders = [ContentHolder(content, clock=frozen), ContentHolder(content, clock=frozen)]
    for one in holders:
        await asyncio.to_thread(one.load)
    states = [shared_state(redis_space.url, redis_space.prefix) for _ in holders]
    syncs = [ContentSync(state, one, tick=0.05) for state, one in zip(states, holders)]
    tasks = [asyncio.create_task(sync.run()) for sync in syncs]
    try:
        old = holders[0].current.content.digest
        for _ in range(100):
            if all(sync.newest == old for sync in syncs):
                break
            await asyncio.sleep(0.02)
        with (content / "resources.yaml").open("a", encoding="utf-8") as handle:
            handle.write("\n# reviewed again\n")
        await asyncio.sleep(1.0)
        assert holders[1].current.content.digest == old  # b does not notice the edit by itself ...
        problems = await asyncio.to_thread(holders[0].reload)  # ... until a reloads (/reload, SIGHUP)
        assert problems == []
        new = holders[0].current.content.digest
        assert new != old
        for _ in range(250):
            if holders[1].current.content.digest == new:
                break
            await asyncio.sleep(0.02)
        assert holders[1].current.content.digest == new
        assert syncs[1].reloads == 1 and syncs[1].newest == new and syncs[0].reloads == 0
    finally:
        for sync in syncs:
            sync.close()
        for task in tasks:
            task.cancel()
        done, pending = await asyncio.wait(tasks, timeout=5)
        assert not pending  # the loops end when asked
        for state in states:
            await state.close()


async def test_a_dead_replicas_claim_lapses_and_another_takes_the_update_over(redis_space: RedisSpace):
    from bot.telegram.feeder import UpdateBusy
    from bot.telegram.shared_state import UpdateGate

    dead, alive = shared_state(redis_space.url, redis_space.prefix), shared_state(redis_space.url, redis_space.prefix)
    try:
        token = await UpdateGate(dead, lease=0.4).claim(77)  # claimed, then its replica "dies": no renewal, no finish
        assert token is not None
        impatient = UpdateGate(alive, lease=0.4, wait=0.1)
        try:
            await impatient.claim(77)
        except UpdateBusy:
            pass  # a copy does not wait for ever: Telegram is asked to send it again (503)
        else:
            raise AssertionError("a live claim was taken over")
        loop = asyncio.get_running_loop()
        started = loop.time()
        gate = UpdateGate(alive, lease=0.4, wait=5)
        taken = await gate.claim(77)  # waits for the lapse, then takes over
        assert taken is not None and taken != token and loop.time() - started >= 0.2
        await gate.finish(77)
        assert await UpdateGate(dead).claim(77) is None  # handled now: any later copy is a duplicate
    finally:
        await dead.close()
        await alive.close()


async def test_a_chat_lock_is_renewed_while_its_update_runs(redis_space: RedisSpace):
    from aiogram.fsm.storage.base import StorageKey

    from bot.telegram.shared_state import SharedEventIsolation

    one, two = shared_state(redis_space.url, redis_space.prefix), shared_state(redis_space.url, redis_space.prefix)
    first, second = SharedEventIsolation(one, ttl=0.3), SharedEventIsolation(two, ttl=0.3)
    key = StorageKey(bot_id=1, chat_id=918273605, user_id=918273605)
    order: list[str] = []

    async def slow() -> None:
        async with first.lock(key):
            order.append("a in")
            await asyncio.sleep(1.2)  # four times the lock's ttl: it must be renewed, not lapse
            order.append("a out")

    async def quick() -> None:
        await asyncio.sleep(0.1)
        async with second.lock(key):
            order.append("b in")

    try:
        await asyncio.gather(slow(), quick())
        assert order == ["a in", "a out", "b in"]
        assert not [k for k in await redis_space.keys() if "918273605" in k]
    finally:
        await one.close()
        await two.close()


async def test_forget_and_edits_see_what_other_replicas_did(redis_space: RedisSpace, bot_api, start_replica):
    a = await start_replica(redis_space.url, redis_space.prefix)
    b = await start_replica(redis_space.url, redis_space.prefix)
    chat = 918273606
    crisis = bot_api.make_message_update(chat, CRISIS)
    await post(a, crisis)  # answered by a, with crisis lines
    [first] = bot_api.sent_to(chat)
    assert "988" in first["text"]
    # The same message edited, seen by b: its risk did not rise above what a answered, so no second answer.
    message_id = crisis["message"]["message_id"]
    await post(b, bot_api.make_message_update(chat, CRISIS + " really", message_id=message_id, edited=True))
    assert len(bot_api.sent_to(chat)) == 1
    await post(a, bot_api.make_message_update(chat, "/menu"))
    sent_by_a = [record["message_id"] for record in bot_api.sent_to(chat)]
    await post(b, bot_api.make_message_update(chat, "/forget"))  # b deletes what a sent
    assert all((chat, message_id) in bot_api.deleted for message_id in sent_by_a), (sent_by_a, bot_api.deleted)
    keys = await redis_space.keys()
    assert not [k for k in keys if ":risk:" in k]  # forgotten in Redis too ...
    [sent_key] = [k for k in keys if ":sent:" in k]
    import redis.asyncio as redis_asyncio  # here: without redis installed the fixture skips, not the import

    client = redis_asyncio.Redis.from_url(redis_space.url, decode_responses=True)
    try:
        remembered = await client.lrange(sent_key, 0, -1)
    finally:
        await client.aclose()
    confirmation = bot_api.sent_to(chat)[-1]["message_id"]
    assert [entry.split(":")[0] for entry in remembered] == [str(confirmation)]  # ... but the reply to /forget
