"""End to end: the real aiogram Bot, Dispatcher and HTTP session against the tests' Bot API server.

Every test runs the shipped content and a SQLite file in tmp_path through `TelegramService`, the same
wiring `hubbot run` uses, in polling mode (a 1 s long poll) or webhook mode.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from bot.reload import ContentHolder
from bot.settings import Settings
from bot.store import SqliteStore
from bot.telegram.callbacks import press_from
from bot.telegram.http import WEBHOOK_PATH, build_http_app
from bot.telegram.metrics import Health, Metrics
from bot.telegram.render import OutgoingMessage, render_reply
from bot.telegram.replier import PLATFORM
from bot.telegram.runner import TelegramService
from tests.fakes import FakeBotAPI
from tests.fakes.fixtures import close_bot

SHIPPED = Path(__file__).resolve().parents[2]
SECRET = "s3cret-Token_for-tests"
ADMIN = 777001
CRISIS = "i want to die"
IMMINENT = "i'm going to kill myself tonight, i have the pills ready"
ANXIETY = "my anxiety is really bad and i keep having panic attacks"
GROUP = -1001234567


@pytest.fixture(scope="module")
def holder() -> ContentHolder:
    loaded = ContentHolder(SHIPPED)
    loaded.load()
    return loaded


def make_settings(bot_api: FakeBotAPI, db: Path, **extra: Any) -> Settings:
    return Settings(  # type: ignore[call-arg]
        BOT_TOKEN=bot_api.token,
        TELEGRAM_API_BASE=bot_api.base_url,
        HUBBOT_DB=str(db),
        HUBBOT_HASH_KEY="test-key",
        HUBBOT_LISTEN="127.0.0.1:0",
        HUBBOT_CONTENT=str(SHIPPED),
        HUBBOT_DEFAULT_REGION="US",
        HUBBOT_ADMIN_IDS=str(ADMIN),
        HUBBOT_WEBHOOK_URL="https://hubbot.example.org/telegram/webhook",
        HUBBOT_WEBHOOK_SECRET=SECRET,
        **extra,
    )


StartService = Callable[..., Awaitable[TelegramService]]


@pytest_asyncio.fixture
async def start_service(bot_api: FakeBotAPI, tmp_path: Path, holder: ContentHolder) -> AsyncIterator[StartService]:
    started: list[tuple[TelegramService, SqliteStore]] = []

    async def start(*, webhook: bool = False, **kwargs: Any) -> TelegramService:
        settings = make_settings(bot_api, tmp_path / f"bot{len(started)}.sqlite3")
        store = SqliteStore(settings.db)
        await store.open()
        bot = bot_api.make_bot()
        service = TelegramService(settings, holder, store, bot, webhook=webhook, polling_timeout=1, **kwargs)
        started.append((service, store))
        await service.start()
        return service

    yield start
    for service, store in started:
        await service.stop()
        await store.close()
        await close_bot(service.bot)


def rows(db: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as connection:
        return connection.execute(sql, args).fetchall()


def buttons_of(record: dict[str, Any]) -> list[dict[str, Any]]:
    markup = record.get("reply_markup") or {}
    return [button for row in markup.get("inline_keyboard", []) for button in row]


def bold_texts(record: dict[str, Any]) -> list[str]:
    text = record["text"].encode("utf-16-le")
    return [
        text[e["offset"] * 2 : (e["offset"] + e["length"]) * 2].decode("utf-16-le")
        for e in record.get("entities") or []
        if e["type"] == "bold"
    ]


async def settle(bot_api: FakeBotAPI, probe_chat: int, before: int) -> None:
    """Send a probe message and wait for its reply: every earlier update of that chat has been handled."""
    bot_api.push_message(probe_chat, "/menu")
    await bot_api.wait_for_sent(before + 1, chat_id=probe_chat)


# --- what a person meets ----------------------------------------------------------------------------


async def test_crisis_message_gets_the_crisis_lines_in_the_first_message(bot_api, start_service, caplog):
    caplog.set_level(logging.DEBUG)
    await start_service()
    bot_api.push_message(1001, CRISIS)
    [first, *_] = await bot_api.wait_for_sent(1, chat_id=1001)
    assert first["method"] == "sendMessage"
    assert "988" in first["text"]
    assert "988" in bold_texts(first)  # the number is bold, as an entity
    assert first["parse_mode"] is None  # nothing is parsed as markup
    kinds = [next(k for k in ("url", "copy_text", "callback_data") if k in b) for b in buttons_of(first)]
    assert "copy_text" in kinds and "url" in kinds and "callback_data" in kinds
    assert {"text": "988"} in [b["copy_text"] for b in buttons_of(first) if "copy_text" in b]
    for button in buttons_of(first):
        if "url" in button:
            assert button["url"].startswith(("https://", "http://", "tg://"))
        if "callback_data" in button:
            assert len(button["callback_data"].encode()) <= 64
            assert press_from(button["callback_data"]) is not None
    assert CRISIS not in caplog.text  # logs never carry what the person wrote


async def test_imminent_message_gets_the_emergency_number_before_the_crisis_line(bot_api, start_service):
    await start_service()
    bot_api.push_message(1002, IMMINENT)
    [first, *_] = await bot_api.wait_for_sent(1, chat_id=1002)
    assert "911" in first["text"] and "988" in first["text"]
    assert first["text"].index("911") < first["text"].index("988")
    assert "911" in bold_texts(first)


async def test_topic_message_gets_that_topics_resources(bot_api, start_service, holder):
    await start_service()
    bot_api.push_message(1003, ANXIETY)
    [reply] = await bot_api.wait_for_sent(1, chat_id=1003)
    nami = next(o for o in holder.current.content.resources.organizations if o.id == "nami")
    assert nami.name in reply["text"]
    assert any(nami.name in bold for bold in bold_texts(reply))
    assert "Suicide & Crisis Lifeline" not in reply["text"]  # no crisis block for an anxiety question


async def test_button_tap_is_answered_and_gets_its_reply(bot_api, start_service):
    await start_service()
    bot_api.push_message(1004, "/start")
    [welcome] = await bot_api.wait_for_sent(1, chat_id=1004)
    sos = next(b for b in buttons_of(welcome) if "callback_data" in b and press_from(b["callback_data"]).action == "sos")
    update = bot_api.push_callback(1004, sos["callback_data"], welcome["message_id"])
    sent = await bot_api.wait_for_sent(2, chat_id=1004)
    assert "988" in sent[1]["text"] and "911" in sent[1]["text"]
    await asyncio.sleep(0.05)
    assert [a["callback_query_id"] for a in bot_api.callback_answers] == [update["callback_query"]["id"]]


async def test_unknown_callback_data_is_answered_with_the_menu(bot_api, start_service):
    await start_service()
    bot_api.push_message(1005, "/start")
    [welcome] = await bot_api.wait_for_sent(1, chat_id=1005)
    bot_api.push_callback(1005, "legacy:format", welcome["message_id"])
    sent = await bot_api.wait_for_sent(2, chat_id=1005)
    assert len(bot_api.callback_answers) == 1
    assert any(press_from(b["callback_data"]).action == "topic" for b in buttons_of(sent[1]) if "callback_data" in b)


async def test_deep_link_start_crisis_shows_the_crisis_lines(bot_api, start_service):
    await start_service()
    bot_api.push_message(1006, "/start crisis")
    [first, *_] = await bot_api.wait_for_sent(1, chat_id=1006)
    assert "988" in first["text"] and "911" in first["text"]


async def test_words_after_a_command_are_read_for_risk(bot_api, start_service):
    await start_service()
    bot_api.push_message(1007, f"/help {CRISIS}")
    [first, *_] = await bot_api.wait_for_sent(1, chat_id=1007)
    assert "988" in first["text"]


async def test_sticker_gets_a_kind_answer_with_an_sos_button(bot_api, start_service, holder):
    await start_service()
    bot_api.push_message(1008, sticker=True)
    [reply] = await bot_api.wait_for_sent(1, chat_id=1008)
    nontext = holder.current.engine.renderer.text("nontext", "en", "US")
    assert reply["text"].startswith(nontext)
    actions = [press_from(b["callback_data"]).action for b in buttons_of(reply) if "callback_data" in b]
    assert "sos" in actions and "menu" in actions
    bot_api.push_message(1008, caption=CRISIS, photo=True)  # a caption is text
    sent = await bot_api.wait_for_sent(2, chat_id=1008)
    assert "988" in sent[1]["text"]


async def test_edited_message_is_answered_only_when_its_risk_rose(bot_api, start_service):
    await start_service()
    original = bot_api.push_message(1009, "hi there")
    message_id = original["message"]["message_id"]
    await bot_api.wait_for_sent(1, chat_id=1009)
    bot_api.push_message(1009, "hello bot, you there?", message_id=message_id, edited=True)  # still none: no answer
    bot_api.push_message(1009, CRISIS, message_id=message_id, edited=True)  # rose to high: answered
    sent = await bot_api.wait_for_sent(2, chat_id=1009)
    assert "988" in sent[1]["text"]
    bot_api.push_message(1009, "hi there", message_id=message_id, edited=True)  # fell: no answer
    await settle(bot_api, 1009, 2)
    assert len(bot_api.sent_to(1009)) == 3


async def test_group_answers_only_start_help_sos_with_a_private_link(bot_api, start_service, holder):
    await start_service()
    notice = holder.current.engine.renderer.text("group_notice", "en", "US")
    bot_api.push_message(GROUP, CRISIS, chat_type="supergroup")  # read nothing else
    bot_api.push_message(GROUP, "/help@hubbot_test_bot", chat_type="supergroup")
    bot_api.push_message(GROUP, "/menu", chat_type="supergroup")
    bot_api.push_message(GROUP, "/help@some_other_bot", chat_type="supergroup")
    bot_api.push_message(GROUP, "/sos", chat_type="supergroup")
    bot_api.push_message(GROUP - 1, "/start", chat_type="group")
    await bot_api.wait_for_sent(2, chat_id=GROUP)
    await bot_api.wait_for_sent(1, chat_id=GROUP - 1)
    await settle(bot_api, 1010, 0)
    sent = bot_api.sent_to(GROUP)
    assert len(sent) == 2
    for record in [*sent, *bot_api.sent_to(GROUP - 1)]:
        assert record["text"] == notice
        [button] = buttons_of(record)
        assert button["url"].startswith("https://t.me/hubbot_test_bot?start=")
    assert buttons_of(sent[0])[0]["url"].endswith("?start=group")
    assert buttons_of(sent[1])[0]["url"].endswith("?start=crisis")


# --- privacy and admin --------------------------------------------------------------------------------


async def test_forget_deletes_the_rows_and_the_bots_recent_messages(bot_api, start_service):
    service = await start_service()
    bot_api.push_message(1011, CRISIS)
    [first, *_] = await bot_api.wait_for_sent(1, chat_id=1011)
    key = service.hubbot.user_key(PLATFORM, 1011)
    assert rows(service.settings.db, "SELECT COUNT(*) FROM events WHERE user_key = ?", key) == [(1,)]
    bot_api.push_message(1011, "/forget")
    await bot_api.wait_for_sent(2, chat_id=1011)
    assert (1011, first["message_id"]) in bot_api.deleted
    assert rows(service.settings.db, "SELECT COUNT(*) FROM users WHERE user_key = ?", key) == [(0,)]
    assert rows(service.settings.db, "SELECT COUNT(*) FROM events WHERE user_key = ?", key) == [(0,)]


async def test_admin_stats_and_reload(bot_api, start_service):
    await start_service()
    bot_api.push_message(1012, CRISIS)
    await bot_api.wait_for_sent(1, chat_id=1012)
    bot_api.push_message(ADMIN, "/stats")
    bot_api.push_message(ADMIN, "/reload")
    stats, reload = await bot_api.wait_for_sent(2, chat_id=ADMIN)
    assert stats["text"].startswith("Last 7 days: 1 turns, 1 people")
    assert "high 1" in stats["text"] and "high_self 1" in stats["text"]
    assert reload["text"].startswith("content reloaded: 0 problems")
    bot_api.push_message(1012, "/stats")  # not an admin: an ordinary message
    sent = await bot_api.wait_for_sent(2, chat_id=1012)
    assert "Last 7 days" not in sent[1]["text"]


async def test_command_menus_are_published_per_language(bot_api, start_service):
    await start_service()
    private = {"type": "all_private_chats"}
    for _ in range(100):
        if bot_api.get_commands(private, "es"):
            break
        await asyncio.sleep(0.02)
    english = {c["command"]: c["description"] for c in bot_api.get_commands(private, "en")}
    spanish = {c["command"]: c["description"] for c in bot_api.get_commands(private, "es")}
    assert english["sos"] == "Crisis lines, any time"
    assert spanish["sos"] == "Líneas de crisis, en cualquier momento"
    assert "videos" not in english  # the shipped content has no videos: never offered
    assert [c["command"] for c in bot_api.get_commands({"type": "all_group_chats"}, "en")] == ["sos", "help"]


async def test_flood_is_throttled_but_a_crisis_message_never_is(bot_api, start_service):
    now = [1000.0]
    await start_service(flood_capacity=3, flood_clock=lambda: now[0])
    for text in ("hi there", "hello bot, you there?", "good morning bot", "sup bot", "hiya, how are you"):
        bot_api.push_message(1013, text)
    bot_api.push_message(1013, CRISIS)
    sent = await bot_api.wait_for_sent(4, chat_id=1013)
    await asyncio.sleep(0.3)
    sent = bot_api.sent_to(1013)
    assert len(sent) == 4  # three within the burst, two dropped, the crisis message answered
    assert "988" in sent[3]["text"]


# --- faults -------------------------------------------------------------------------------------------


async def test_429_waits_retry_after_then_the_reply_arrives(bot_api, start_service):
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        await asyncio.sleep(seconds)

    await start_service(sleep=sleep)
    bot_api.fail_next("sendMessage", 429, retry_after=1)
    bot_api.push_message(1020, CRISIS)
    [first, *_] = await bot_api.wait_for_sent(1, chat_id=1020, timeout=6)
    assert "988" in first["text"]
    calls = bot_api.calls_to("sendMessage")
    assert [c["status"] for c in calls[:2]] == [429, 200]
    assert slept == [1.0]
    assert calls[1]["time"] - calls[0]["time"] >= 0.9


async def test_403_marks_the_user_inactive_and_the_bot_carries_on(bot_api, start_service):
    service = await start_service()
    bot_api.push_message(1021, "hi there")
    await bot_api.wait_for_sent(1, chat_id=1021)
    bot_api.block_user(1021)
    bot_api.push_message(1021, CRISIS)
    for _ in range(200):
        if any(c["status"] == 403 for c in bot_api.calls_to("sendMessage")):
            break
        await asyncio.sleep(0.02)
    await settle(bot_api, 1022, 0)
    key = service.hubbot.user_key(PLATFORM, 1021)
    assert rows(service.settings.db, "SELECT active FROM users WHERE user_key = ?", key) == [(0,)]
    assert service.metrics.blocked == 1


async def test_400_on_one_message_is_logged_and_the_next_is_still_sent(bot_api, start_service, caplog):
    caplog.set_level(logging.INFO)
    service = await start_service()
    bot_api.push_message(1023, "hi there")
    await bot_api.wait_for_sent(1, chat_id=1023)
    bot_api.fail_next("sendMessage", 400, "Bad Request: message is too long")
    result = await service.sender.send(1023, [OutgoingMessage("part one"), OutgoingMessage("part two")])
    assert (result.sent, result.failed, result.blocked) == (1, 1, False)
    assert [r["text"] for r in bot_api.sent_to(1023)[1:]] == ["part two"]
    assert "status=400" in caplog.text and "message is too long" in caplog.text
    bot_api.fail_next("sendMessage", 400, "Bad Request: message is too long")
    bot_api.push_message(1023, "/help")  # this reply is lost ...
    bot_api.push_message(1023, CRISIS)  # ... and the bot still answers the next one
    sent = await bot_api.wait_for_sent(3, chat_id=1023)
    assert "988" in sent[2]["text"]


async def test_a_refused_keyboard_never_costs_the_crisis_text(bot_api, start_service):
    await start_service()
    bot_api.fail_next("sendMessage", 400, "Bad Request: BUTTON_URL_INVALID")
    bot_api.push_message(1024, CRISIS)
    [first] = await bot_api.wait_for_sent(1, chat_id=1024)
    assert "988" in first["text"] and "988" in bold_texts(first)
    assert not buttons_of(first)


async def test_stalled_send_still_delivers_the_reply(bot_api, start_service):
    await start_service()
    bot_api.stall_next("sendMessage", 2.0)
    started = time.monotonic()
    bot_api.push_message(1025, CRISIS)
    [first] = await bot_api.wait_for_sent(1, chat_id=1025, timeout=8)
    assert "988" in first["text"]
    assert time.monotonic() - started >= 1.9  # the stall really happened


async def test_network_errors_are_retried_with_backoff(bot_api, start_service):
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    await start_service(sleep=sleep)
    bot_api.fail_next("sendMessage", 502, times=2)
    bot_api.push_message(1026, CRISIS)
    [first] = await bot_api.wait_for_sent(1, chat_id=1026)
    assert "988" in first["text"]
    assert slept == [0.5, 1.0]


async def test_malformed_update_in_polling_is_skipped_and_the_next_answered(bot_api, start_service, caplog):
    caplog.set_level(logging.INFO)
    service = await start_service()
    bot_api.push_raw({"message": {"text": CRISIS, "chat": "not a chat"}})
    bot_api.push_message(1027, CRISIS)
    [first] = await bot_api.wait_for_sent(1, chat_id=1027)
    assert "988" in first["text"]
    assert "update malformed" in caplog.text and CRISIS not in caplog.text
    assert service.metrics.malformed == 1


async def test_duplicate_update_id_is_answered_once(bot_api, start_service):
    service = await start_service()
    update = bot_api.make_message_update(1028, CRISIS)
    bot_api.push_raw(update)
    bot_api.push_raw(dict(update))  # Telegram resends the same update
    await bot_api.wait_for_sent(1, chat_id=1028)
    await settle(bot_api, 1028, 1)
    assert len(bot_api.sent_to(1028)) == 2  # the crisis reply once, then the probe's reply
    assert service.metrics.duplicates == 1


async def test_handler_exception_gets_the_crisis_safe_fallback(bot_api, start_service, caplog, holder):
    caplog.set_level(logging.INFO)
    service = await start_service()

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"leaks {CRISIS}")

    service.hubbot.handle = broken  # type: ignore[method-assign]
    bot_api.push_message(1029, CRISIS)
    [first, *_] = await bot_api.wait_for_sent(1, chat_id=1029)
    assert first["text"] == render_reply(holder.current.engine.safe_fallback("en", "US"))[0].text
    assert "988" in first["text"]
    assert "handler failed" in caplog.text and "error=RuntimeError" in caplog.text
    assert CRISIS not in caplog.text


# --- webhook mode -------------------------------------------------------------------------------------


async def test_webhook_right_secret_is_answered_wrong_secret_is_401(bot_api, start_service, caplog):
    caplog.set_level(logging.INFO)
    service = await start_service(webhook=True)
    assert bot_api.webhook == {
        "url": "https://hubbot.example.org/telegram/webhook",
        "secret_token": SECRET,
        "max_connections": 40,
    }
    url = service.base_url + WEBHOOK_PATH
    wrong = await bot_api.post_webhook_update(url, bot_api.make_message_update(1030, CRISIS), "wrong")
    missing = await bot_api.post_webhook_update(url, bot_api.make_message_update(1030, CRISIS))
    assert (wrong.status, missing.status) == (401, 401)
    malformed = await bot_api.post_webhook_update(url, {"update_id": 1, "message": {"text": CRISIS}}, SECRET)
    assert malformed.status == 200  # logged and skipped, not resent for ever
    update = bot_api.make_message_update(1030, CRISIS)
    right = await bot_api.post_webhook_update(url, update, SECRET)
    again = await bot_api.post_webhook_update(url, update, SECRET)  # a redelivery
    assert (right.status, again.status) == (200, 200)
    [first] = await bot_api.wait_for_sent(1, chat_id=1030)
    assert "988" in first["text"]
    await asyncio.sleep(0.2)
    assert len(bot_api.sent_to(1030)) == 1  # the wrong secrets and the duplicate got nothing
    assert "update malformed" in caplog.text and CRISIS not in caplog.text
    assert bot_api.calls_to("getUpdates") == []


# --- health and metrics ---------------------------------------------------------------------------------


async def get(url: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        body = await response.json() if response.content_type == "application/json" else await response.text()
        return response.status, body


async def test_healthz_and_metrics_after_start(bot_api, start_service, holder):
    service = await start_service()
    for _ in range(200):
        if service.health.last_poll_ok is not None:
            break
        await asyncio.sleep(0.02)
    bot_api.push_message(1040, CRISIS)
    await bot_api.wait_for_sent(1, chat_id=1040)
    status, body = await get(service.base_url + "/healthz")
    assert status == 200
    assert body["status"] == "ok" and body["content_hash"] == holder.current.content.digest
    assert 0 <= body["polling_ok_age_s"] < 60
    status, text = await get(service.base_url + "/metrics")
    assert status == 200
    assert "hubbot_updates_total 1\n" in text and "hubbot_crisis_replies_total 1\n" in text
    assert "hubbot_replies_total 1\n" in text and "hubbot_errors_total 0\n" in text


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


async def test_healthz_fails_without_content_or_when_polling_is_stale(tmp_path):
    unloaded = ContentHolder(tmp_path / "missing")
    now = [0.0]
    health = Health(polling=True, clock=lambda: now[0])
    runner, base = await serve(build_http_app(unloaded, Metrics(), health))
    try:
        status, body = await get(base + "/healthz")
        assert status == 503 and body["content_hash"] is None
    finally:
        await runner.cleanup()

    loaded = ContentHolder(SHIPPED)
    loaded.load()
    runner, base = await serve(build_http_app(loaded, Metrics(), health))
    try:
        health.poll_succeeded()
        now[0] = 59.0
        assert (await get(base + "/healthz"))[0] == 200
        now[0] = 61.0
        status, body = await get(base + "/healthz")
        assert status == 503 and body["polling_ok_age_s"] == 61.0
    finally:
        await runner.cleanup()


# --- load ------------------------------------------------------------------------------------------------

SEQUENCES = (
    ("/start", "hi there", CRISIS, "/privacy", "/menu"),
    (IMMINENT, "/help", ANXIETY, "/start", "thanks a lot for this 🙏"),
)


async def expected_first_lines(tmp_path: Path, holder: ContentHolder, bot_api: FakeBotAPI) -> list[list[str]]:
    """What each sequence gets, from the app itself (a separate database), as the first line of each reply."""
    from bot.app import HubbotApp

    settings = make_settings(bot_api, tmp_path / "reference.sqlite3")
    out = []
    async with SqliteStore(settings.db) as store:
        app = HubbotApp(settings, holder, store)
        for number, sequence in enumerate(SEQUENCES):
            lines = []
            for text in sequence:
                fields: dict[str, Any] = {"language_hint": "en"}
                if text.startswith("/"):
                    fields["command"] = text[1:]
                else:
                    fields["text"] = text
                decision = await app.handle(PLATFORM, 9_000_000 + number, fields)
                messages = render_reply(decision.reply)
                assert len(messages) == 1
                lines.append(messages[0].text.split("\n")[0])
            out.append(lines)
    return out


async def test_200_users_5_messages_each_answered_once_in_order(bot_api, start_service, holder, tmp_path):
    expected = await expected_first_lines(tmp_path, holder, bot_api)
    service = await start_service()
    users = [500_000 + n for n in range(200)]
    started = time.perf_counter()
    for turn in range(5):
        for n, chat in enumerate(users):
            bot_api.push_message(chat, SEQUENCES[n % 2][turn])
    await bot_api.wait_for_sent(len(users) * 5, timeout=45)
    elapsed = time.perf_counter() - started
    await asyncio.sleep(0.2)
    assert len(bot_api.sent) == len(users) * 5  # none twice
    for n, chat in enumerate(users):
        got = bot_api.sent_to(chat)
        assert [r["text"].split("\n")[0] for r in got] == expected[n % 2], chat  # per-chat order kept
        for text, record in zip(SEQUENCES[n % 2], got):
            if text in (CRISIS, IMMINENT):
                assert "988" in record["text"]
    assert service.metrics.replies == len(users) * 5 and service.metrics.errors == 0
    print(f"\nthroughput: {len(users) * 5} messages from {len(users)} users in {elapsed:.2f} s = {len(users) * 5 / elapsed:.0f} messages/s")


# --- shutdown and the command line ------------------------------------------------------------------


async def test_stop_drains_the_reply_in_flight(bot_api, start_service):
    service = await start_service()
    bot_api.stall_next("sendMessage", 1.0)
    bot_api.push_message(1050, CRISIS)
    for _ in range(200):
        if bot_api.calls_to("sendMessage"):
            break
        await asyncio.sleep(0.02)
    assert bot_api.sent_to(1050) == []  # the send is stalled on the server
    await service.stop()
    [first] = bot_api.sent_to(1050)
    assert "988" in first["text"]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_hubbot_run_answers_serves_healthz_and_exits_cleanly_on_sigterm(bot_api, tmp_path):
    import os
    import signal
    import sys

    port = free_port()
    env = {
        **os.environ,
        "BOT_TOKEN": bot_api.token,
        "TELEGRAM_API_BASE": bot_api.base_url,
        "HUBBOT_DB": str(tmp_path / "run.sqlite3"),
        "HUBBOT_HASH_KEY": "test-key",
        "HUBBOT_LISTEN": f"127.0.0.1:{port}",
        "HUBBOT_CONTENT": str(SHIPPED),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "run", env=env, cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        bot_api.push_message(1060, CRISIS)
        [first] = await bot_api.wait_for_sent(1, chat_id=1060, timeout=20)
        assert "988" in first["text"]
        status, body = await get(f"http://127.0.0.1:{port}/healthz")
        assert status == 200 and body["status"] == "ok"
        # The referral acknowledgement endpoint is mounted: an unsigned request is refused, not unknown.
        import aiohttp

        async with aiohttp.ClientSession() as http:
            async with http.post(f"http://127.0.0.1:{port}/referrals/ack", data=b"{}") as response:
                assert response.status == 401
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), 15)
        _, stderr = await process.communicate()
        assert code == 0, stderr.decode()[-2000:]
        assert CRISIS not in stderr.decode()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
