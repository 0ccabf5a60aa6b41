"""Acceptance: three real `hubbot run --webhook` processes behind one "Telegram", on PostgreSQL and Redis.

The test starts the Bot API server, three replicas (subprocesses, each on its own HUBBOT_LISTEN port)
sharing one PostgreSQL schema (HUBBOT_DB=postgresql://...?search_path=...) and one Redis key prefix,
and a driver that delivers updates the way Telegram's webhook does:

- 2,000 updates from 300 private chats; a chat's updates come in bursts, and a chat's next update is
  sent only after the previous one was answered 2xx (Telegram keeps one update per chat in flight);
  many chats at once (at most MAX_CONNECTIONS requests, Telegram's default max_connections);
- each request goes to the next replica, round robin (a proxy would do the same);
- duplicates: some updates are posted to two replicas at the same time, others again after their answer;
- a request that fails (connection refused or reset, 5xx) is sent again, to the next replica;
- one replica is killed with SIGKILL a third of the way through.

Checked: every update answered exactly once (per chat, as many replies as distinct updates; PostgreSQL
holds exactly the events the turns make); each chat's replies in the order of its messages (each chat
follows a pattern of alternating crisis and other messages, and each reply's first line must be the one
the engine gives for that message at that point); crisis lines (988) in the first message of every
crisis answer; afterwards a content edit reaches both surviving replicas (/healthz content hashes agree).

An update that the killed replica was handling at that moment is the only one that may be answered
twice (its reply may have left just before the kill, and Telegram then sends it again): the test counts
and prints such updates and allows at most one extra answer for each; no other update may repeat.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import signal
import sqlite3
import statistics
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.app import HubbotApp
from bot.reload import ContentHolder
from bot.settings import Settings
from bot.store import SqliteStore
from bot.telegram.http import WEBHOOK_PATH
from bot.telegram.render import render_reply
from bot.telegram.replier import PLATFORM
from tests.fakes import FakeBotAPI
from tests.integration.scale_support import (  # noqa: F401 (fixtures)
    SHIPPED,
    PgSchema,
    RedisSpace,
    free_port,
    pg_schema,
    redis_space,
)

SECRET = "scale-Secret_token-0123"
HASH_KEY = "scale-test-hash-key"
CRISIS = "i want to die"
IMMINENT = "i'm going to kill myself tonight, i have the pills ready"
ANXIETY = "my anxiety is really bad and i keep having panic attacks"
CRISIS_TEXTS = (CRISIS, IMMINENT)
# Crisis and other messages alternate in each pattern: a swap of two replies changes their first lines.
PATTERNS = (
    (CRISIS, "/menu", IMMINENT, "hi there", CRISIS, "/privacy", IMMINENT),
    ("hi there", CRISIS, "/help", IMMINENT, "thanks a lot", CRISIS, "/menu"),
    (ANXIETY, IMMINENT, "/privacy", CRISIS, "/menu", CRISIS),
)
CHATS = 300
UPDATES = 2000
REPLICAS = 3
MAX_CONNECTIONS = 40
CONCURRENT_DUPLICATE = 0.05  # share of updates also posted to a second replica at the same time
LATE_DUPLICATE = 0.03  # share of updates posted again after their answer
KILL_AFTER = UPDATES // 3
KILLED = 1  # which replica


@dataclass
class Delivery:
    chat: int
    index: int  # position in the chat's pattern
    update: dict[str, Any]
    first_sent: float = 0.0
    answered: float = 0.0
    attempts: int = 0
    cut_by_kill: bool = False  # the killed replica had it when it died


@dataclass
class Driver:
    urls: list[str]
    session: aiohttp.ClientSession
    semaphore: asyncio.Semaphore
    rng: random.Random
    killed_url: str | None = None
    cut_ids: set[int] = field(default_factory=set)  # update ids the killed replica had in hand when it died
    next_replica: int = 0
    delivered: int = 0
    failed_posts: int = 0
    statuses: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    in_flight: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))  # url -> update ids
    kill_reached: asyncio.Event = field(default_factory=asyncio.Event)
    late: list[asyncio.Task[Any]] = field(default_factory=list)

    def pick(self, avoid: str | None = None) -> str:
        url = self.urls[self.next_replica % len(self.urls)]
        self.next_replica += 1
        if url == avoid:
            url = self.urls[self.next_replica % len(self.urls)]
            self.next_replica += 1
        return url

    async def post_once(self, url: str, update: dict[str, Any], delivery: Delivery | None = None) -> int | None:
        """One POST as Telegram makes it: the status, or None when the connection failed."""
        update_id = update["update_id"]
        try:
            async with self.semaphore:
                self.in_flight[url].add(update_id)
                if delivery is not None and not delivery.first_sent:
                    delivery.first_sent = time.time()  # Telegram's own queueing is not the bot's time to answer
                async with self.session.post(
                    url, data=json.dumps(update), headers={"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"}
                ) as response:
                    await response.read()
                    self.statuses[response.status] += 1
                    return response.status
        except (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError):
            self.failed_posts += 1
            return None
        finally:
            self.in_flight[url].discard(update_id)

    async def deliver(self, delivery: Delivery) -> None:
        """Until a replica answers 2xx, to the next replica each time (Telegram's retries, sped up)."""
        url = self.pick()
        duplicate = self.rng.random() < CONCURRENT_DUPLICATE
        while True:
            delivery.attempts += 1
            if duplicate:
                duplicate = False
                statuses = await asyncio.gather(
                    self.post_once(url, delivery.update, delivery), self.post_once(self.pick(avoid=url), delivery.update)
                )
                ok = any(s is not None and 200 <= s < 300 for s in statuses)
            else:
                status = await self.post_once(url, delivery.update, delivery)
                ok = status is not None and 200 <= status < 300
            if ok:
                break
            if delivery.update["update_id"] in self.cut_ids:
                delivery.cut_by_kill = True
            assert delivery.attempts < 40, f"update {delivery.update['update_id']} never answered"
            await asyncio.sleep(0.05 * min(delivery.attempts, 4))
            url = self.pick(avoid=url)
        delivery.answered = time.time()
        self.delivered += 1
        if self.delivered >= KILL_AFTER:
            self.kill_reached.set()
        if self.rng.random() < LATE_DUPLICATE:  # Telegram sends it again later (it never saw our answer)
            self.late.append(asyncio.create_task(self.post_once(self.pick(), delivery.update)))

    async def run_chat(self, deliveries: list[Delivery]) -> None:
        """A chat's updates in bursts of 1-4, one at a time, each after the previous one was answered."""
        await asyncio.sleep(self.rng.random() * 2.0)
        position = 0
        while position < len(deliveries):
            burst = self.rng.randint(1, 4)
            for delivery in deliveries[position : position + burst]:
                await self.deliver(delivery)
            position += burst
            await asyncio.sleep(self.rng.random() * 0.5)


async def reference(tmp_path: Path, content: Path) -> tuple[list[list[str]], list[int]]:
    """Each pattern's reply first lines and event count, from the app itself on a scratch SQLite file."""
    holder = ContentHolder(content)
    holder.load()
    settings = Settings(HUBBOT_DB=str(tmp_path / "reference.sqlite3"), HUBBOT_HASH_KEY=HASH_KEY, HUBBOT_CONTENT=str(content))  # type: ignore[call-arg]
    lines: list[list[str]] = []
    events: list[int] = []
    keys: list[str] = []
    async with SqliteStore(settings.db) as store:
        app = HubbotApp(settings, holder, store)
        for number, pattern in enumerate(PATTERNS):
            got = []
            for text in pattern:
                fields: dict[str, Any] = {"language_hint": "en"}
                if text.startswith("/"):
                    fields["command"] = text[1:]
                else:
                    fields["text"] = text
                decision = await app.handle(PLATFORM, 5_000_000 + number, fields)
                [message] = render_reply(decision.reply)  # one message per reply: a reply is one sendMessage
                got.append(message.text.split("\n")[0])
            lines.append(got)
            keys.append(app.user_key(PLATFORM, 5_000_000 + number))
    with sqlite3.connect(settings.db) as db:
        for key in keys:
            [(count,)] = db.execute("SELECT COUNT(*) FROM events WHERE user_key = ?", (key,)).fetchall()
            events.append(int(count))
    return lines, events


async def healthz(session: aiohttp.ClientSession, base: str) -> dict[str, Any] | None:
    try:
        async with session.get(base + "/healthz", timeout=aiohttp.ClientTimeout(total=3)) as response:
            return await response.json() if response.status == 200 else None
    except (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError, ValueError):
        return None


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def test_three_replicas_answer_every_update_once_in_order_through_a_kill(
    bot_api: FakeBotAPI, tmp_path: Path, pg_schema: PgSchema, redis_space: RedisSpace
):
    content = tmp_path / "content"  # a copy: the test edits it at the end
    shutil.copytree(SHIPPED / "intents", content / "intents")
    shutil.copy(SHIPPED / "resources.yaml", content / "resources.yaml")
    expected_lines, expected_events = await reference(tmp_path, content)

    ports = [free_port() for _ in range(REPLICAS)]
    bases = [f"http://127.0.0.1:{port}" for port in ports]
    env = {
        **os.environ,
        "BOT_TOKEN": bot_api.token,
        "TELEGRAM_API_BASE": bot_api.base_url,
        "HUBBOT_DB": pg_schema.url,
        "HUBBOT_HASH_KEY": HASH_KEY,
        "HUBBOT_CONTENT": str(content),
        "HUBBOT_WEBHOOK_URL": "https://hubbot.example.org/telegram/webhook",
        "HUBBOT_WEBHOOK_SECRET": SECRET,
        "HUBBOT_REDIS_URL": redis_space.url,
        "HUBBOT_REDIS_PREFIX": redis_space.prefix,
        "HUBBOT_LOG_LEVEL": "WARNING",
    }
    logs = [open(tmp_path / f"replica{n}.log", "wb") for n in range(REPLICAS)]  # noqa: SIM115 - closed below
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", "run", "--webhook",
            env={**env, "HUBBOT_LISTEN": f"127.0.0.1:{port}"}, cwd=tmp_path, stdout=log, stderr=log,
        )
        for port, log in zip(ports, logs)
    ]

    def tail(n: int) -> str:
        return (tmp_path / f"replica{n}.log").read_text(errors="replace")[-3000:]

    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    session = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60))
    try:
        for number, base in enumerate(bases):
            for _ in range(300):
                if await healthz(session, base) is not None:
                    break
                assert processes[number].returncode is None, tail(number)
                await asyncio.sleep(0.1)
            else:
                pytest.fail(f"replica {number} never became healthy:\n{tail(number)}")

        rng = random.Random(20240613)
        chats = [810_000 + n for n in range(CHATS)]
        per_chat: dict[int, list[Delivery]] = {}
        for number, chat in enumerate(chats):
            pattern = PATTERNS[number % len(PATTERNS)]
            per_chat[chat] = [Delivery(chat, index, bot_api.make_message_update(chat, text)) for index, text in enumerate(pattern)]
        total = sum(len(d) for d in per_chat.values())
        assert total == UPDATES

        driver = Driver([base + WEBHOOK_PATH for base in bases], session, asyncio.Semaphore(MAX_CONNECTIONS), rng)

        async def kill_when_due() -> float:
            await driver.kill_reached.wait()
            driver.killed_url = driver.urls[KILLED]
            cut = driver.cut_ids = set(driver.in_flight[driver.urls[KILLED]])  # no await between these two lines
            processes[KILLED].send_signal(signal.SIGKILL)
            await processes[KILLED].wait()
            print(f"\nkilled replica {KILLED} (SIGKILL) after {driver.delivered} answered updates, {len(cut)} of its requests in flight")
            return time.time()

        killer = asyncio.create_task(kill_when_due())
        started = time.time()
        await asyncio.gather(*(driver.run_chat(deliveries) for deliveries in per_chat.values()))
        elapsed = time.time() - started
        killed_at = await killer
        await asyncio.gather(*driver.late)
        await asyncio.sleep(1.0)  # anything still on its way would show up now

        # --- exactly once, in order, crisis lines first ----------------------------------------------
        sends = [record for record in bot_api.sent if record["method"] == "sendMessage"]
        assert len(bot_api.sent) == len(sends)  # replies are plain sendMessage calls
        by_chat: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for record in sends:
            by_chat[record["chat_id"]].append(record)
        assert set(by_chat) == set(chats)
        repeated: list[int] = []  # update ids answered twice because the killed replica had them
        latencies: list[float] = []
        for number, chat in enumerate(chats):
            deliveries = per_chat[chat]
            expected = expected_lines[number % len(PATTERNS)]
            got = [record["text"].split("\n")[0] for record in by_chat[chat]]
            records = list(by_chat[chat])
            if len(got) != len(expected):
                # Only a reply of an update cut by the kill may repeat, once, right after itself.
                assert len(got) == len(expected) + 1, (chat, got)
                cut = [d.index for d in deliveries if d.cut_by_kill]
                twice = next((i for i in range(len(got) - 1) if got[i] == got[i + 1] and i in cut), None)
                assert twice is not None, (chat, cut, got)
                repeated.append(deliveries[twice].update["update_id"])
                del got[twice + 1], records[twice + 1]
            assert got == expected, (chat, got, expected)  # each reply once, in the chat's order
            for delivery, record in zip(deliveries, records):
                text = delivery.update["message"]["text"]
                if text in CRISIS_TEXTS:
                    assert "988" in record["text"], (chat, text)
                if text == IMMINENT:
                    assert "911" in record["text"], (chat, text)
                latencies.append(record["time"] - delivery.first_sent)
        cut_total = sum(d.cut_by_kill for deliveries in per_chat.values() for d in deliveries)
        assert len(repeated) <= cut_total

        rows = await pg_schema.fetch("SELECT COUNT(*) FROM users")
        [(events,)] = await pg_schema.fetch("SELECT COUNT(*) FROM events")
        want = sum(expected_events[n % len(PATTERNS)] for n in range(CHATS))
        duplicates_posted = driver.statuses[200] - UPDATES  # every 2xx beyond one per update was a copy
        print(
            f"replicas: {REPLICAS} (1 killed), {UPDATES} updates from {CHATS} chats in {elapsed:.1f} s = "
            f"{UPDATES / elapsed:.0f} updates/s; time to answer p50 {statistics.median(latencies) * 1000:.0f} ms, "
            f"p99 {percentile(latencies, 0.99) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms"
        )
        print(
            f"copies answered 2xx and skipped: {duplicates_posted}; failed requests retried: {driver.failed_posts}; "
            f"updates cut by the kill: {cut_total}, answered twice: {len(repeated)}, turns written twice: {events - want}; "
            f"statuses {dict(driver.statuses)}"
        )
        assert rows == [(CHATS,)]
        # No turn was handled twice, except that the killed replica may have written the turn of an update
        # it had in hand and died before answering it: that update was handled again elsewhere.
        assert want == UPDATES  # one event per turn
        assert want <= events <= want + cut_total, (events, want, cut_total)
        assert duplicates_posted > 50  # the duplicates really happened
        assert driver.failed_posts > 0 and killed_at > started  # and so did the kill

        # --- a content edit reaches every surviving replica -----------------------------------------
        alive = [base for n, base in enumerate(bases) if n != KILLED]
        before = [await healthz(session, base) for base in alive]
        assert all(b is not None for b in before)
        old = before[0]["content_hash"]  # type: ignore[index]
        assert {b["content_hash"] for b in before} == {old}  # type: ignore[index]
        assert all(b["redis"] == "ok" and b["content_hash_newest"] == old for b in before)  # type: ignore[index]
        with (content / "resources.yaml").open("a", encoding="utf-8") as handle:
            handle.write("\n# checked again by the scale test\n")
        edited = time.time()
        reports: list[dict[str, Any] | None] = []
        for _ in range(150):
            reports = [await healthz(session, base) for base in alive]
            if all(r is not None and r["content_hash"] != old for r in reports):
                break
            await asyncio.sleep(0.1)
        hashes = {r["content_hash"] for r in reports if r is not None}
        assert len(hashes) == 1 and old not in hashes, reports
        assert all(r["content_hash_newest"] == r["content_hash"] for r in reports if r is not None)
        print(f"content edit reached both surviving replicas in {time.time() - edited:.1f} s")

        # --- the survivors stop cleanly -------------------------------------------------------------
        for n, process in enumerate(processes):
            if n != KILLED:
                process.send_signal(signal.SIGTERM)
        for n, process in enumerate(processes):
            if n != KILLED:
                code = await asyncio.wait_for(process.wait(), 20)
                assert code == 0, tail(n)
        for n in range(REPLICAS):
            text = (tmp_path / f"replica{n}.log").read_text(errors="replace")
            assert CRISIS not in text and IMMINENT not in text  # no message text in any log
            assert "Traceback" not in text, tail(n)
    finally:
        await session.close()
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()
        for log in logs:
            log.close()
