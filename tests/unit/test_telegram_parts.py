"""The adapter's small parts without a network: dedup, flood control, risk memory, chat locks, start-up checks."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from aiogram.fsm.storage.base import StorageKey
from aiogram.types import Update

from bot.content.models import RiskLevel
from bot.reload import ContentHolder
from bot.settings import Settings
from bot.telegram.callbacks import pack_press
from bot.telegram.chat_memory import RecentRisk, SentMessages
from bot.telegram.commands_menu import command_menu, help_descriptions
from bot.telegram.isolation import ChatEventIsolation
from bot.telegram.metrics import Metrics
from bot.telegram.middlewares import DedupMiddleware, FloodControlMiddleware
from bot.telegram.routers.edited import risk_rose
from bot.telegram.runner import check_startup, parse_listen, run_bot

SHIPPED = Path(__file__).resolve().parents[2]
TOKEN = "123456789:AAH-test_token_that_looks_valid_000000"


@pytest.fixture(scope="module")
def holder() -> ContentHolder:
    loaded = ContentHolder(SHIPPED)
    loaded.load()
    return loaded


def message_update(update_id: int, text: str, chat_id: int = 5) -> Update:
    return Update.model_validate(
        {
            "update_id": update_id,
            "message": {
                "message_id": 1,
                "date": 0,
                "chat": {"id": chat_id, "type": "private"},
                "from": {"id": chat_id, "is_bot": False, "first_name": "T"},
                "text": text,
            },
        }
    )


def test_dedup_remembers_a_bounded_number_of_update_ids() -> None:
    dedup = DedupMiddleware(Metrics(), size=3)
    assert [dedup.first_time(n) for n in (1, 2, 1, 3, 4, 5)] == [True, True, False, True, True, True]
    assert dedup.first_time(1)  # pushed out of the LRU by 3, 4, 5 (1 was refreshed before them)
    assert not dedup.first_time(5)


def test_flood_bucket_refills_over_time(holder: ContentHolder) -> None:
    now = [0.0]
    flood = FloodControlMiddleware(holder, Metrics(), capacity=3, refill_per_s=1.0, clock=lambda: now[0])
    assert [flood.take(7) for _ in range(4)] == [True, True, True, False]
    assert flood.take(8)  # per person
    now[0] = 1.0
    assert flood.take(7) and not flood.take(7)


def test_urgent_updates_pass_flood_control(holder: ContentHolder) -> None:
    flood = FloodControlMiddleware(holder, Metrics())
    assert flood.urgent(message_update(1, "i want to kill myself"))
    assert flood.urgent(message_update(2, "/sos"))
    assert flood.urgent(message_update(3, "/start crisis"))
    assert not flood.urgent(message_update(4, "hi there"))
    assert not flood.urgent(message_update(5, "this exam is killing me"))
    sos = Update.model_validate(
        {
            "update_id": 6,
            "callback_query": {
                "id": "q",
                "from": {"id": 5, "is_bot": False, "first_name": "T"},
                "chat_instance": "c",
                "data": pack_press("sos", None),
            },
        }
    )
    assert flood.urgent(sos)


def test_recent_risk_and_the_edit_rule() -> None:
    memory = RecentRisk(per_chat=2, max_chats=2)
    memory.remember(1, 10, RiskLevel.NONE)
    memory.remember(1, 11, RiskLevel.HIGH)
    memory.remember(1, 12, RiskLevel.CONCERN)
    assert memory.risk_of(1, 10) is None and memory.risk_of(1, 11) == RiskLevel.HIGH
    memory.remember(2, 1, RiskLevel.NONE)
    memory.remember(3, 1, RiskLevel.NONE)
    assert memory.risk_of(1, 12) is None  # the least recently active chat went first
    assert risk_rose(RiskLevel.NONE, RiskLevel.CONCERN)
    assert not risk_rose(RiskLevel.HIGH, RiskLevel.HIGH)
    assert not risk_rose(None, RiskLevel.CONCERN) and risk_rose(None, RiskLevel.HIGH)


def test_sent_messages_keeps_only_what_telegram_still_lets_a_bot_delete() -> None:
    now = [0.0]
    sent = SentMessages(per_chat=3, clock=lambda: now[0])
    for message_id in (1, 2, 3, 4):
        sent.add(9, message_id)
        now[0] += 3600
    now[0] = 48 * 3600 + 1  # message 1 (t=0) is too old; 2, 3, 4 remain, 1 also fell out of the ring
    assert sent.take_deletable(9) == [2, 3, 4]
    assert sent.take_deletable(9) == []


async def test_chat_locks_keep_order_per_chat_and_are_dropped_when_idle() -> None:
    isolation = ChatEventIsolation()
    order: list[tuple[int, int]] = []

    async def handle(chat: int, n: int, delay: float) -> None:
        key = StorageKey(bot_id=1, chat_id=chat, user_id=chat)
        async with isolation.lock(key):
            await asyncio.sleep(delay)
            order.append((chat, n))

    await asyncio.gather(handle(1, 0, 0.05), handle(1, 1, 0.0), handle(2, 0, 0.0), handle(1, 2, 0.0))
    assert [n for chat, n in order if chat == 1] == [0, 1, 2]
    assert order[0] == (2, 0)  # another chat did not wait
    assert isolation.active_chats == 0


def test_command_descriptions_come_from_the_help_reply(holder: ContentHolder) -> None:
    assert help_descriptions(holder.current, "es")["sos"] == "líneas de crisis, en cualquier momento"
    menu = {c.command: c.description for c in command_menu(holder.current, "en")}
    assert menu["sos"] == "Crisis lines, any time" and menu["menu"] == "Topics to pick from"  # from the help reply
    assert "videos" not in menu  # no videos in the shipped content


def test_metrics_render_counts_only() -> None:
    metrics = Metrics(updates=3, crisis_replies=1)
    text = metrics.render()
    assert "hubbot_updates_total 3\n" in text and "hubbot_crisis_replies_total 1\n" in text


def test_parse_listen() -> None:
    assert parse_listen("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert parse_listen(":9000") == ("0.0.0.0", 9000)
    assert parse_listen("[::1]:80") == ("::1", 80)
    with pytest.raises(ValueError):
        parse_listen("localhost")


def settings(**extra: object) -> Settings:
    return Settings(HUBBOT_CONTENT=str(SHIPPED), HUBBOT_DB=":memory:", **extra)  # type: ignore[arg-type]


def test_run_refuses_without_a_token(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BOT_TOKEN", raising=False)
    assert run_bot(settings(BOT_TOKEN=""), webhook=False) == 2
    assert "BOT_TOKEN is not set" in capsys.readouterr().err
    assert check_startup(settings(BOT_TOKEN="not-a-token"), webhook=False)[0] == 2
    assert "does not look like a bot token" in capsys.readouterr().err


def test_webhook_mode_needs_url_and_secret(capsys: pytest.CaptureFixture[str]) -> None:
    code, holder = check_startup(settings(BOT_TOKEN=TOKEN, HUBBOT_WEBHOOK_URL="https://x.example/telegram/webhook"), webhook=True)
    assert (code, holder) == (2, None)
    assert "HUBBOT_WEBHOOK_SECRET" in capsys.readouterr().err


def test_run_refuses_invalid_content_with_path_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(SHIPPED / "intents", tmp_path / "intents")
    text = (SHIPPED / "resources.yaml").read_text(encoding="utf-8")
    (tmp_path / "resources.yaml").write_text(text.replace("languages: [en, es]", "languages: [en, es", 1), encoding="utf-8")
    code, holder = check_startup(Settings(BOT_TOKEN=TOKEN, HUBBOT_CONTENT=str(tmp_path)), webhook=False)  # type: ignore[call-arg]
    assert (code, holder) == (1, None)
    err = capsys.readouterr().err
    assert f"{tmp_path / 'resources.yaml'}:" in err and "refusing to start" in err


def test_valid_settings_load_the_content() -> None:
    code, holder = check_startup(settings(BOT_TOKEN=TOKEN), webhook=False)
    assert code == 0 and holder is not None and holder.loaded


async def test_an_update_of_an_unknown_type_is_skipped_without_logging_its_content(caplog: pytest.LogCaptureFixture) -> None:
    from aiogram.dispatcher.event.bases import UNHANDLED

    from bot.telegram.middlewares import UnknownUpdateMiddleware

    caplog.set_level("DEBUG")
    update = Update.model_validate({"update_id": 77, "future_kind": {"text": "secret words"}})
    called = []

    async def handler(event: object, data: dict) -> str:  # type: ignore[type-arg]
        called.append(event)
        return "handled"

    assert await UnknownUpdateMiddleware()(handler, update, {}) is UNHANDLED
    assert called == [] and "update_id=77" in caplog.text and "secret words" not in caplog.text
    assert await UnknownUpdateMiddleware()(handler, message_update(78, "hi"), {}) == "handled"
