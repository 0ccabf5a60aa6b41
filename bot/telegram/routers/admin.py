"""/stats and /reload for the ids in HUBBOT_ADMIN_IDS, in private chats. Counts only, never user data.

These answers are for operators, not for the people the bot supports, so they are plain English here.
"""

from __future__ import annotations

import asyncio
import time

from aiogram import Router
from aiogram.filters import Command, Filter
from aiogram.types import Message

from bot.reload import ContentHolder
from bot.engine.reply import Reply, escape_markup
from bot.settings import Settings
from bot.store import Stats, Store
from bot.telegram.render import render_reply
from bot.telegram.replier import Replier
from bot.telegram.routers.common import PRIVATE


STATS_DAYS = 7
MAX_PROBLEMS_SHOWN = 5


class IsAdmin(Filter):
    async def __call__(self, message: Message, settings: Settings) -> bool:
        return message.from_user is not None and message.from_user.id in settings.admin_ids


def _counts(title: str, counts: dict[str, int]) -> str:
    if not counts:
        return f"{title}: -"
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return f"{title}: " + ", ".join(f"{name} {count}" for name, count in ordered)


def format_stats(stats: Stats, days: int = STATS_DAYS) -> str:
    lines = [
        f"Last {days} days: {stats.events} turns, {stats.users} people",
        _counts("Risk", stats.by_risk),
        _counts("Intent", {**stats.by_intent, **({"(none)": stats.no_intent} if stats.no_intent else {})}),
        _counts("Rule", stats.by_rule),
        _counts("Kind", stats.by_kind),
        _counts("Referrals", stats.referrals_by_status),
    ]
    return "\n".join(lines)


async def _answer(replier: Replier, chat_id: int, text: str) -> None:
    await replier.sender.send(chat_id, render_reply(Reply(text=escape_markup(text))))


async def stats(message: Message, store: Store, replier: Replier) -> None:
    try:
        found = await store.stats(time.time() - STATS_DAYS * 86_400)
        text = format_stats(found)
    except Exception as error:  # noqa: BLE001
        text = f"stats failed: {type(error).__name__}"
    await _answer(replier, message.chat.id, text)


async def reload(message: Message, holder: ContentHolder, replier: Replier) -> None:
    problems = await asyncio.to_thread(holder.reload)  # loading takes a moment: not on the event loop
    if not problems:
        text = f"content reloaded: 0 problems, content hash {holder.current.content.digest}"
    else:
        shown = "\n".join(str(problem) for problem in problems[:MAX_PROBLEMS_SHOWN])
        more = f"\n… and {len(problems) - MAX_PROBLEMS_SHOWN} more" if len(problems) > MAX_PROBLEMS_SHOWN else ""
        text = f"reload failed: {len(problems)} problem(s); the previous content stays\n{shown}{more}"
    await _answer(replier, message.chat.id, text)


def make_router() -> Router:
    router = Router(name=__name__)
    router.message.filter(PRIVATE)
    router.message.register(stats, Command("stats", ignore_case=True), IsAdmin())
    router.message.register(reload, Command("reload", ignore_case=True), IsAdmin())
    return router
