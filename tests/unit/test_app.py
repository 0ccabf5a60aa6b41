"""HubbotApp with a real SQLite store: turns are saved without text, failures never block the reply."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.app import HubbotApp
from bot.reload import ContentHolder
from bot.engine import ButtonPress
from bot.settings import Settings
from bot.store import SqliteStore, Store, StoreError
from tests.unit.engine_support import SHIPPED, T0

SECRET = "nobody may ever read this sentence, I want to die"
CHAT_ID = 4242


@pytest.fixture(scope="module")
def holder() -> ContentHolder:
    holder = ContentHolder(SHIPPED)
    holder.load()
    return holder


def settings_for(db: Path, **extra: object) -> Settings:
    return Settings(HUBBOT_DB=str(db), HUBBOT_HASH_KEY="test-key", HUBBOT_CONTENT=str(SHIPPED), **extra)  # type: ignore[arg-type]


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    async with SqliteStore(str(tmp_path / "bot.sqlite3")) as opened:
        yield opened  # type: ignore[misc]


def rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as connection:
        return connection.execute(sql).fetchall()


async def test_a_turn_is_saved_with_ids_and_never_text(tmp_path: Path, holder: ContentHolder, store: SqliteStore, caplog: pytest.LogCaptureFixture) -> None:
    db = tmp_path / "bot.sqlite3"
    app = HubbotApp(settings_for(db), holder, store, clock=Clock())
    with caplog.at_level(logging.DEBUG):
        decision = await app.handle("telegram", CHAT_ID, {"text": SECRET})
    assert decision.rule in ("high_self", "imminent") and decision.reply.resources
    events = rows(db, "SELECT user_key, kind, intent, risk, rule, resources FROM events")
    assert len(events) == 1
    user_key, kind, _intent, risk, rule, resources = events[0]
    assert (kind, risk, rule) == ("text", decision.risk, decision.rule)
    assert "988-lifeline" in str(resources)
    assert user_key == app.user_key("telegram", CHAT_ID) and str(CHAT_ID) not in str(user_key)
    with sqlite3.connect(db) as connection:
        dump = "\n".join(connection.iterdump())
    assert SECRET not in dump and "want to die" not in dump
    assert SECRET not in caplog.text and "want to die" not in caplog.text
    assert f"rule={decision.rule}" in caplog.text and "988-lifeline" in caplog.text


async def test_the_session_carries_over_between_turns(tmp_path: Path, holder: ContentHolder, store: SqliteStore) -> None:
    app = HubbotApp(settings_for(tmp_path / "bot.sqlite3"), holder, store, clock=Clock())
    await app.handle("telegram", CHAT_ID, {"button": ButtonPress("region", "GB")})
    await app.handle("telegram", CHAT_ID, {"text": SECRET})
    thanks = await app.handle("telegram", CHAT_ID, {"text": "thanks"})
    assert thanks.session.region == "GB" and thanks.rule == "crisis_mode_pinned"
    assert "samaritans" in thanks.reply.resources


async def test_forget_deletes_every_row(tmp_path: Path, holder: ContentHolder, store: SqliteStore) -> None:
    db = tmp_path / "bot.sqlite3"
    app = HubbotApp(settings_for(db), holder, store, clock=Clock())
    await app.handle("telegram", CHAT_ID, {"text": "hello"})
    await app.handle("telegram", CHAT_ID + 1, {"text": "hello"})
    decision = await app.handle("telegram", CHAT_ID, {"command": "forget"})
    assert decision.reply.text
    key = app.user_key("telegram", CHAT_ID)
    for table in ("users", "sessions", "events"):
        assert rows(db, f"SELECT count(*) FROM {table} WHERE user_key = '{key}'") == [(0,)], table
    assert rows(db, "SELECT count(*) FROM users") == [(1,)]  # the other person is untouched


class FailingStore(SqliteStore):
    async def load(self, user_key: str):  # type: ignore[no-untyped-def]
        raise StoreError("disk on fire: " + SECRET)

    async def save_turn(self, *args: object, **kwargs: object) -> None:
        raise sqlite3.OperationalError("database is locked")


async def test_a_store_that_raises_still_yields_the_crisis_reply(tmp_path: Path, holder: ContentHolder, caplog: pytest.LogCaptureFixture) -> None:
    failing: Store = FailingStore(str(tmp_path / "bot.sqlite3"))
    app = HubbotApp(settings_for(tmp_path / "bot.sqlite3"), holder, failing, clock=Clock())
    with caplog.at_level(logging.ERROR):
        decision = await app.handle("telegram", CHAT_ID, {"text": SECRET})
    assert decision.rule in ("high_self", "imminent") and "988-lifeline" in decision.reply.resources
    assert "StoreError" in caplog.text and "OperationalError" in caplog.text
    assert "disk on fire" not in caplog.text and SECRET not in caplog.text


async def test_an_engine_failure_is_logged_by_class_and_answered_with_lines(tmp_path: Path, store: SqliteStore, caplog: pytest.LogCaptureFixture) -> None:
    holder = ContentHolder(SHIPPED)
    loaded = holder.load()

    def boom(text: str) -> object:
        raise ValueError(f"could not parse {text!r}")

    object.__setattr__(loaded.understander, "understand", boom)
    app = HubbotApp(settings_for(tmp_path / "bot.sqlite3"), holder, store, clock=Clock())
    with caplog.at_level(logging.ERROR):
        decision = await app.handle("telegram", CHAT_ID, {"text": SECRET})
    assert decision.rule == "internal_error" and "988-lifeline" in decision.reply.resources
    assert "error=ValueError" in caplog.text and SECRET not in caplog.text


async def test_debug_text_logs_the_message(tmp_path: Path, holder: ContentHolder, store: SqliteStore, caplog: pytest.LogCaptureFixture) -> None:
    app = HubbotApp(settings_for(tmp_path / "bot.sqlite3", HUBBOT_DEBUG_TEXT=True), holder, store, clock=Clock())
    with caplog.at_level(logging.INFO):
        await app.handle("telegram", CHAT_ID, {"text": "hello there"})
    assert "hello there" in caplog.text


async def test_staff_notice_goes_to_the_notifier_without_identity(tmp_path: Path, holder: ContentHolder, store: SqliteStore) -> None:
    notices: list[str] = []

    async def notify(text: str) -> None:
        notices.append(text)

    app = HubbotApp(settings_for(tmp_path / "bot.sqlite3"), holder, store, clock=Clock(), staff_notifier=notify)
    decision = await app.handle("telegram", CHAT_ID, {"text": "I'm going to kill myself tonight, I have the pills ready"})
    assert decision.risk == "imminent"
    assert len(notices) == 1 and "imminent" in notices[0] and str(CHAT_ID) not in notices[0] and "pills" not in notices[0]


async def test_purge_old_uses_the_retention_settings(tmp_path: Path, holder: ContentHolder, store: SqliteStore) -> None:
    db = tmp_path / "bot.sqlite3"
    clock = Clock()
    app = HubbotApp(settings_for(db, HUBBOT_EVENT_RETENTION_DAYS=1), holder, store, clock=clock)
    await app.handle("telegram", CHAT_ID, {"text": "hello"})
    clock.now += 2 * 86_400
    await app.handle("telegram", CHAT_ID, {"text": "hello again"})
    result = await app.purge_old()
    assert result.events == 1
    assert rows(db, "SELECT count(*) FROM events") == [(1,)]
