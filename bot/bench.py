"""`hubbot bench`: throughput and latency of understanding, and of full turns with database writes.

Every message is distinct (a counter and random words make each one new), so nothing can be served
from a cache; lengths run from a few words to 4,096 characters. It runs in this one process.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import statistics
import tempfile
import time
from pathlib import Path

from bot.content.loader import Content
from bot.nlu.pipeline import Understander

_SEEDS = (
    "i want to die", "this exam is killing me", "how do i deal with anxiety", "i feel so alone lately",
    "my friend wants to kill herself", "ya no quiero vivir", "what's the weather tomorrow", "book a table for two",
    "i can't sleep at night", "someone told me to kys", "i'm not suicidal just stressed", "me siento muy sola",
    "how do i help my brother", "set an alarm for 7am", "i keep cutting myself", "la tarea me está matando",
    "thanks for the help", "are you a real person", "quiero ver videos", "my grandma passed away last week",
)
_FILLER = (
    "today school work really just maybe because honestly feel people always never thing time home friends family "
    "night morning phone game music class teacher boss week weekend coffee tired busy weird okay fine lol omg "
    "hoy trabajo casa amigos familia noche semana clase musica cansada bien pues entonces tal vez"
).split()


def corpus(count: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    messages: list[str] = []
    for number in range(count):
        base = rng.choice(_SEEDS)
        roll = rng.random()
        if roll < 0.6:
            size = rng.randint(0, 12)
        elif roll < 0.9:
            size = rng.randint(12, 80)
        else:
            size = rng.randint(80, 700)
        words = [rng.choice(_FILLER) for _ in range(size)]
        words.insert(rng.randint(0, len(words)), base)
        text = f"{' '.join(words)} #{number}"
        messages.append(text[:4096])
    return messages


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def bench_understanding(content: Content, count: int) -> tuple[float, float, float]:
    understander = Understander(content)
    messages = corpus(count)
    for text in messages[:200]:
        understander.understand(text + " warmup")
    timings: list[float] = []
    started = time.perf_counter()
    for text in messages:
        t0 = time.perf_counter()
        understander.understand(text)
        timings.append(time.perf_counter() - t0)
    total = time.perf_counter() - started
    return count / total, statistics.median(timings) * 1000, _percentile(timings, 0.99) * 1000


def is_postgres(db: str | None) -> bool:
    return db is not None and db.lower().startswith(("postgresql://", "postgres://"))


async def bench_turns(content: Content, count: int, db: str | None) -> float:
    """Full turns/s. A PostgreSQL URL gets a scratch schema (created, then dropped with the bench's rows),
    so benchmarking next to live data never adds to it; the hash key is a fixed bench-only key."""
    from bot.app import HubbotApp
    from bot.reload import ContentHolder
    from bot.settings import Settings
    from bot.store import Store, open_store

    with tempfile.TemporaryDirectory() as scratch:
        path = db or str(Path(scratch) / "bench.sqlite3")
        settings = Settings(HUBBOT_DB=path, HUBBOT_HASH_KEY="bench-only-key", HUBBOT_CONTENT=str(content.directory))
        holder = ContentHolder(content.directory)
        holder.load()
        schema = f"hubbot_bench_{secrets.token_hex(6)}" if is_postgres(db) else None
        store: Store
        if schema is not None:
            from bot.store.postgres import PostgresStore, import_asyncpg

            await _postgres(path, f"CREATE SCHEMA {schema}", import_asyncpg())
            store = PostgresStore(path, schema=schema)
        else:
            store = open_store(path)
        try:
            await store.open()
            try:
                app = HubbotApp(settings, holder, store)
                messages = corpus(count, seed=11)
                started = time.perf_counter()
                for number, text in enumerate(messages):
                    await app.handle("bench", number % 500, {"text": text})
                return count / (time.perf_counter() - started)
            finally:
                await store.close()
        finally:
            if schema is not None:
                await _postgres(path, f"DROP SCHEMA IF EXISTS {schema} CASCADE", import_asyncpg())


async def _postgres(url: str, statement: str, asyncpg: object) -> None:
    conn = await asyncpg.connect(url, timeout=10)  # type: ignore[attr-defined]
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def run_bench(content: Content, *, messages: int, turns: int, db: str | None) -> int:
    # Per-turn INFO logs would measure the terminal, not the bot.
    logging.getLogger("bot").setLevel(max(logging.WARNING, logging.getLogger("bot").getEffectiveLevel()))
    rate, p50, p99 = bench_understanding(content, messages)
    print(f"understanding: {rate:,.0f} messages/s, p50 {p50:.3f} ms, p99 {p99:.3f} ms ({messages} distinct messages, up to 4,096 characters)")
    turn_rate = asyncio.run(bench_turns(content, turns, db))
    where = "PostgreSQL (a scratch schema, dropped after)" if is_postgres(db) else "the given SQLite file" if db else "SQLite (WAL)"
    print(f"turns: {turn_rate:,.0f} turns/s ({turns} full turns with {where} writes)")
    return 0
