"""Live hand-off end to end: the real aiogram Bot, Dispatcher and polling against the tests' Bot API
server, with a private chat per person and the organisation's staff supergroup as a forum.

Accept -> a topic titled without any name or id -> copyMessage both ways -> risk flag -> close from
either side; non-staff ignored; outside hours or with nobody available no live offer; 20 people at once
with nothing crossing; /forget closes it and deletes the mapping.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml

from bot.app import HubbotApp
from bot.engine import ButtonPress
from bot.engine.reply import Reply, plain_text
from bot.live.service import LiveService, build_live_service
from bot.referrals.service import ReferralService, build_referral_service
from bot.referrals.staff import bot_staff_sender
from bot.reload import ContentHolder
from bot.settings import Settings
from bot.store import SqliteStore
from bot.telegram.render import render_reply
from bot.telegram.replier import PLATFORM
from bot.telegram.runner import TelegramService
from tests.fakes import FakeBotAPI
from tests.fakes.fixtures import close_bot
from tests.integration.referrals_support import ORG_ID, T0, Clock, build_content_dir

STAFF_CHAT = -1001000000001
STAFF_ID = 100000001
OTHER_STAFF = 100000002
STRANGER = 100000999
NAME = "Example Crisis Partner"
CHAT = 5151
CRISIS = "i want to kill myself tonight"
HOURS = {"timezone": "UTC", "open": {"thu": ["09:00-17:00"]}, "label": {"en": "Thursdays 9-17 UTC", "es": "jueves 9-17 UTC"}}


@pytest.fixture(scope="module")
def holder(tmp_path_factory: pytest.TempPathFactory) -> ContentHolder:
    target = build_content_dir(
        tmp_path_factory.mktemp("live-content"), channel="telegram", fallback=None, url=None, secret_env=None,
        staff_chat_id=STAFF_CHAT, staff_ids=[STAFF_ID, OTHER_STAFF], live=True, ack_within_minutes=30,
    )
    resources = yaml.safe_load((target / "resources.yaml").read_text(encoding="utf-8"))
    for org in resources["organizations"]:
        if org["id"] == ORG_ID:
            org["hours"] = HOURS  # T0 is Thursday 10:00 UTC: open
    (target / "resources.yaml").write_text(yaml.safe_dump(resources, allow_unicode=True, sort_keys=False), encoding="utf-8")
    loaded = ContentHolder(target)
    loaded.load()
    return loaded


@dataclass
class Live:
    api: FakeBotAPI
    service: TelegramService
    referrals: ReferralService
    live: LiveService
    store: SqliteStore
    clock: Clock
    db: Path
    holder: ContentHolder

    @property
    def app(self) -> HubbotApp:
        return self.service.hubbot

    def key(self, chat: int) -> str:
        return self.app.user_key(PLATFORM, chat)

    def reply(self, reply_id: str, language: str = "en", **values: str) -> str:
        text = self.holder.current.content.replies[reply_id][language]
        for name, value in values.items():
            text = text.replace("{" + name + "}", value)
        return plain_text(text)

    def rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.db) as connection:
            return connection.execute(sql, args).fetchall()

    async def consent(self, chat: int) -> str:
        """The person's crisis message, the offer, the consent screen and 'yes': one pending referral."""
        self.api.add_chat(chat, "private")
        crisis = await self.app.handle(PLATFORM, chat, {"text": CRISIS})
        offer = next(b for b in crisis.reply.buttons if b.action == "handoff")
        screen = await self.app.handle(PLATFORM, chat, {"button": ButtonPress("handoff", offer.value)})
        confirm = next(b for b in screen.reply.buttons if b.action == "handoff")
        await self.app.handle(PLATFORM, chat, {"button": ButtonPress("handoff", confirm.value)})
        [(referral_id,)] = self.rows("SELECT id FROM referrals WHERE user_key = ?", self.key(chat))
        return str(referral_id)

    async def accept(self, chat: int) -> dict[str, Any]:
        """Consent, then a staff Accept (the staff-chat path); returns the topic created."""
        referral_id = await self.consent(chat)
        topics = len(self.api.topics)
        answer = await self.referrals.acks.staff_decision(referral_id, True, user_id=STAFF_ID, chat_id=STAFF_CHAT)
        assert answer.result == "ok" and answer.changed
        assert len(self.api.topics) == topics + 1, "no topic was opened"
        [topic] = [t for t in self.api.topics if t["message_thread_id"] == self.topic_of(chat)]
        return topic

    def topic_of(self, chat: int) -> int:
        [(topic_id,)] = self.rows("SELECT topic_id FROM live_sessions WHERE user_key = ?", self.key(chat))
        return int(topic_id)

    def in_topic(self, topic_id: int) -> list[dict[str, Any]]:
        return [r for r in self.api.sent_to(STAFF_CHAT) if r["message_thread_id"] == topic_id]

    async def staff_says(self, topic_id: int, text: str, user_id: int = STAFF_ID) -> dict[str, Any]:
        return self.api.push_message(STAFF_CHAT, text, chat_type="supergroup", user_id=user_id, message_thread_id=topic_id)


@pytest_asyncio.fixture
async def live(bot_api: FakeBotAPI, tmp_path: Path, holder: ContentHolder) -> AsyncIterator[Live]:
    clock = Clock(T0)
    db = tmp_path / "bot.sqlite3"
    settings = Settings(  # type: ignore[call-arg]
        BOT_TOKEN=bot_api.token, TELEGRAM_API_BASE=bot_api.base_url, HUBBOT_DB=str(db), HUBBOT_HASH_KEY="test-key",
        HUBBOT_LISTEN="127.0.0.1:0", HUBBOT_CONTENT=str(holder.directory),
        HUBBOT_DEFAULT_REGION="US",
    )
    bot_api.add_chat(STAFF_CHAT, "supergroup", title="Example Crisis Partner staff", is_forum=True)
    store = SqliteStore(str(db))
    await store.open()
    bot = bot_api.make_bot()
    holder_service: list[TelegramService] = []

    async def notify_person(user_key: str, chat_id: int, reply: Reply) -> None:  # as in runner._serve
        await holder_service[0].sender.send(chat_id, render_reply(reply))

    referrals = build_referral_service(
        store, lambda: holder.current.engine, notify_person=notify_person, staff_send=bot_staff_sender(bot), clock=clock,
    )
    live_service = build_live_service(store, bot, lambda: holder.current.engine, referrals, clock=clock)
    hubbot = HubbotApp(settings, holder, store, clock=clock)
    service = TelegramService(
        settings, holder, store, bot, polling_timeout=1, hubbot=hubbot,
        extra_routers=[referrals.staff_router(), live_service.router()],
    )
    holder_service.append(service)
    await service.start()
    state = Live(bot_api, service, referrals, live_service, store, clock, db, holder)
    bot_api.push_message(STAFF_CHAT, "/available", chat_type="supergroup", user_id=STAFF_ID)
    await bot_api.wait_for_sent(1, chat_id=STAFF_CHAT)
    try:
        yield state
    finally:
        await service.stop()
        await referrals.close()
        await store.close()
        await close_bot(bot)


def copies_of(api: FakeBotAPI) -> list[dict[str, Any]]:
    return [r for r in api.sent if r["method"] == "copyMessage"]


def texts(records: list[dict[str, Any]]) -> str:
    return "\n".join(r["text"] or "" for r in records)


# --- tests ---------------------------------------------------------------------------------------------


async def test_a_staff_tap_opens_a_topic_without_identity_and_messages_flow_both_ways_by_copy(live: Live) -> None:
    api = live.api
    referral_id = await live.consent(CHAT)
    assert (await live.referrals.worker.run_once()).delivered == 1
    card = next(r for r in api.sent_to(STAFF_CHAT) if referral_id in (r["text"] or ""))
    accept = card["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    before = len(api.sent_to(CHAT))
    api.push_callback(STAFF_CHAT, accept, card["message_id"], user_id=STAFF_ID)
    [started] = (await api.wait_for_sent(before + 1, chat_id=CHAT))[before:]
    assert live.reply("live_started", name=NAME) in started["text"]

    [topic] = api.topics
    assert topic["chat_id"] == STAFF_CHAT and topic["name"].startswith("Person ")
    assert "EN" in topic["name"] and "imminent" in topic["name"]
    for secret in (str(CHAT), live.key(CHAT), "Test"):  # no id, no user key, no first name
        assert secret not in topic["name"]
    topic_id = topic["message_thread_id"]
    assert live.rows("SELECT org_id, chat_id FROM live_sessions") == [(ORG_ID, CHAT)]

    # person -> topic: copied from the private chat, never forwarded
    sent = api.push_message(CHAT, "thank you, i just need to talk to someone")
    copies = await _wait_copies(api, STAFF_CHAT, 1)
    assert copies[-1]["from_chat_id"] == CHAT and copies[-1]["source_message_id"] == sent["message"]["message_id"]
    assert copies[-1]["message_thread_id"] == topic_id and "forward_origin" not in copies[-1]["message"]
    assert not api.calls_to("forwardMessage")

    # staff -> person: copied from the topic, labelled with the organisation's name
    before = len(api.sent_to(CHAT))
    staff = await live.staff_says(topic_id, "Hi, I'm here with you. What's been happening?")
    got = (await api.wait_for_sent(before + 2, chat_id=CHAT))[before:]
    assert got[0]["method"] == "sendMessage" and NAME in got[0]["text"]
    assert got[1]["method"] == "copyMessage" and got[1]["from_chat_id"] == STAFF_CHAT
    assert got[1]["source_message_id"] == staff["message"]["message_id"] and "forward_origin" not in got[1]["message"]
    assert await _wait_for(lambda: live.rows("SELECT last_staff_at FROM live_sessions") == [(T0,)])
    stored = b"".join(path.read_bytes() for path in live.db.parent.glob(live.db.name + "*"))
    assert b"just need to talk" not in stored and b"What's been happening" not in stored  # no message text stored


async def test_high_risk_during_the_relay_flags_the_topic_and_the_person_still_gets_crisis_lines(live: Live) -> None:
    api = live.api
    topic_id = (await live.accept(CHAT))["message_thread_id"]
    before = len(api.sent_to(CHAT))
    api.push_message(CHAT, "i'm going to kill myself tonight, i have the pills ready")
    await _wait_copies(api, STAFF_CHAT, 1)
    flags = await _wait_for(lambda: [r for r in live.in_topic(topic_id) if "⚠️" in (r["text"] or "")])
    assert "imminent" in flags[0]["text"]
    crisis = (await api.wait_for_sent(before + 1, chat_id=CHAT))[before:]
    assert any("988" in (r["text"] or "") for r in crisis), "the crisis lines were held back"
    assert live.rows("SELECT COUNT(*) FROM live_sessions") == [(1,)]  # the conversation goes on


async def test_silence_beyond_ack_within_shows_crisis_lines_once(live: Live) -> None:
    api = live.api
    await live.accept(CHAT)
    live.clock.advance(31 * 60)
    before = len(api.sent_to(CHAT))
    api.push_message(CHAT, "is anyone there")
    got = (await api.wait_for_sent(before + 1, chat_id=CHAT))[before:]
    assert live.reply("live_waiting") in got[0]["text"] and "988" in got[0]["text"]
    api.push_message(CHAT, "hello?")
    await _wait_copies(api, STAFF_CHAT, 2)
    await _settle_private(live, CHAT)
    assert sum(live.reply("live_waiting") in (r["text"] or "") for r in api.sent_to(CHAT)) == 1


async def test_the_person_ends_with_slash_end_and_a_later_staff_reply_gets_a_notice(live: Live) -> None:
    api = live.api
    topic_id = (await live.accept(CHAT))["message_thread_id"]
    before = len(api.sent_to(CHAT))
    api.push_message(CHAT, "/end")
    [ended] = (await api.wait_for_sent(before + 1, chat_id=CHAT))[before:]
    assert live.reply("live_ended") in ended["text"] and ended["reply_markup"]["inline_keyboard"]
    assert live.rows("SELECT COUNT(*) FROM live_sessions") == [(0,)]
    await _wait_for(lambda: [r for r in live.in_topic(topic_id) if "ended the conversation" in (r["text"] or "")])
    copies = len(copies_of(api))
    await live.staff_says(topic_id, "are you still there?")
    await _wait_for(lambda: [r for r in live.in_topic(topic_id) if "already ended" in (r["text"] or "")])
    assert len(copies_of(api)) == copies and len(api.sent_to(CHAT)) == before + 1


async def test_staff_close_tells_the_person_and_a_second_close_only_gets_a_notice(live: Live) -> None:
    api = live.api
    topic_id = (await live.accept(CHAT))["message_thread_id"]
    before = len(api.sent_to(CHAT))
    await live.staff_says(topic_id, "/close")
    [closed] = (await api.wait_for_sent(before + 1, chat_id=CHAT))[before:]
    assert live.reply("live_staff_closed") in closed["text"]
    assert live.rows("SELECT COUNT(*) FROM live_sessions") == [(0,)]
    await live.staff_says(topic_id, "/close", user_id=OTHER_STAFF)
    await _wait_for(lambda: [r for r in live.in_topic(topic_id) if "already ended" in (r["text"] or "")])
    # and the person's next message is an ordinary turn again, not relayed
    copies = len(copies_of(api))
    api.push_message(CHAT, "thanks")
    await api.wait_for_sent(before + 2, chat_id=CHAT)
    assert len(copies_of(api)) == copies


async def test_a_message_from_someone_not_listed_in_the_topic_is_not_relayed(live: Live) -> None:
    api = live.api
    topic_id = (await live.accept(CHAT))["message_thread_id"]
    before = len(api.sent_to(CHAT))
    await live.staff_says(topic_id, "hello from a stranger", user_id=STRANGER)
    await live.staff_says(topic_id, "hello from the team", user_id=STAFF_ID)
    await api.wait_for_sent(before + 1, chat_id=CHAT)
    await _settle_group(live)
    got = api.sent_to(CHAT)[before:]
    sources = [api.messages[(STAFF_CHAT, r["source_message_id"])]["text"] for r in got if r["method"] == "copyMessage"]
    assert sources == ["hello from the team"]


async def test_outside_hours_or_with_nobody_available_no_live_conversation_is_promised(live: Live) -> None:
    api = live.api
    live.clock.advance(10 * 3600)  # Thursday 20:00 UTC: closed
    referral_id = await live.consent(CHAT)
    await live.referrals.acks.staff_decision(referral_id, True, user_id=STAFF_ID, chat_id=STAFF_CHAT)
    [message] = await api.wait_for_sent(1, chat_id=CHAT)
    assert live.reply("live_unavailable", name=NAME) in message["text"] and "988" in message["text"]
    assert live.reply("live_started", name=NAME) not in message["text"]
    assert api.topics == [] and live.rows("SELECT COUNT(*) FROM live_sessions") == [(0,)]

    live.clock.advance(-10 * 3600)  # open again, but everyone is away
    api.push_message(STAFF_CHAT, "/away", chat_type="supergroup", user_id=STAFF_ID)
    await _wait_for(lambda: [r for r in api.sent_to(STAFF_CHAT) if "Marked away" in (r["text"] or "")])
    other = CHAT + 1
    referral_id = await live.consent(other)
    await live.referrals.acks.staff_decision(referral_id, True, user_id=STAFF_ID, chat_id=STAFF_CHAT)
    [message] = await api.wait_for_sent(1, chat_id=other)
    assert live.reply("live_unavailable", name=NAME) in message["text"] and api.topics == []


async def test_twenty_concurrent_hand_offs_never_cross(live: Live) -> None:
    api = live.api
    chats = [7000 + n for n in range(20)]
    topics = {}
    for chat in chats:
        topics[chat] = (await live.accept(chat))["message_thread_id"]
    assert len(set(topics.values())) == 20
    assert len({t["name"] for t in api.topics}) == 20
    for chat in chats:
        api.push_message(chat, f"person {chat} here")
        await live.staff_says(topics[chat], f"staff for {chat}")
    await _wait_copies(api, STAFF_CHAT, 20)
    await _wait_for(lambda: len([r for r in copies_of(api) if r["chat_id"] in chats]) >= 20)
    for record in copies_of(api):
        source = api.messages[(record["from_chat_id"], record["source_message_id"])]["text"]
        if record["chat_id"] == STAFF_CHAT:  # person -> topic: into that person's topic only
            assert source == f"person {record['from_chat_id']} here"
            assert record["message_thread_id"] == topics[record["from_chat_id"]]
        else:  # staff -> person: that person's staff answer only
            assert source == f"staff for {record['chat_id']}"


async def test_forget_closes_the_conversation_and_deletes_the_mapping(live: Live) -> None:
    api = live.api
    topic_id = (await live.accept(CHAT))["message_thread_id"]
    assert live.rows("SELECT COUNT(*) FROM live_sessions") == [(1,)]
    before = len(api.sent_to(CHAT))
    api.push_message(CHAT, "/forget")
    await api.wait_for_sent(before + 1, chat_id=CHAT)
    assert live.rows("SELECT COUNT(*) FROM live_sessions") == [(0,)]
    assert live.rows("SELECT COUNT(*) FROM users") == [(0,)]
    await _wait_for(lambda: [r for r in live.in_topic(topic_id) if "ended the conversation" in (r["text"] or "")])
    copies = len(copies_of(api))
    await live.staff_says(topic_id, "hello?")
    await _wait_for(lambda: [r for r in live.in_topic(topic_id) if "already ended" in (r["text"] or "")])
    assert len(copies_of(api)) == copies


async def test_store_forget_covers_live_sessions(live: Live) -> None:
    await live.accept(CHAT)
    key = live.key(CHAT)
    tables = ("users", "sessions", "events", "referrals", "chat_refs", "live_sessions")
    expected = sum(live.rows(f"SELECT COUNT(*) FROM {table} WHERE user_key = ?", key)[0][0] for table in tables)
    assert live.rows("SELECT COUNT(*) FROM live_sessions") == [(1,)]
    assert await live.store.forget(key) == expected  # the live row is deleted (and counted) by forget itself
    assert live.rows("SELECT COUNT(*) FROM live_sessions") == [(0,)]


# --- waiting helpers -----------------------------------------------------------------------------------


async def _wait_for(probe: Any, timeout: float = 5.0) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        found = probe()
        if found:
            return found
        if loop.time() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.02)


async def _wait_copies(api: FakeBotAPI, chat_id: int, count: int) -> list[dict[str, Any]]:
    return await _wait_for(lambda: (c := [r for r in copies_of(api) if r["chat_id"] == chat_id]) and len(c) >= count and c)


async def _settle_group(live: Live) -> None:
    """A probe in the staff group: every earlier update of that chat has been handled (one at a time, in order)."""
    count = len([r for r in live.api.sent_to(STAFF_CHAT) if "Marked available" in (r["text"] or "")])
    live.api.push_message(STAFF_CHAT, "/available", chat_type="supergroup", user_id=STAFF_ID)
    await _wait_for(lambda: len([r for r in live.api.sent_to(STAFF_CHAT) if "Marked available" in (r["text"] or "")]) > count)


async def _settle_private(live: Live, chat: int) -> None:
    """/sos always answers normally, even in a live conversation: every earlier update was handled."""
    before = len(live.api.sent_to(chat))
    live.api.push_message(chat, "/sos")
    await live.api.wait_for_sent(before + 1, chat_id=chat)
