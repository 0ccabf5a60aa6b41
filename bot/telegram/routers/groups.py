"""Groups, supergroups and channels: /start, /help and /sos get `group_notice` and a link to a private
chat; everything else is ignored unread."""

from __future__ import annotations

import logging

from aiogram import Bot, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from bot.reload import ContentHolder
from bot.engine.turn import CRISIS_DEEP_LINK
from bot.engine.reply import Button, Reply
from bot.settings import Settings
from bot.telegram.pending_texts import PENDING_TEXTS
from bot.telegram.render import render_reply
from bot.telegram.replier import Replier
from bot.telegram.routers.common import NOT_PRIVATE, language_hint

log = logging.getLogger(__name__)


GROUP_COMMANDS = ("start", "help", "sos")
GROUP_DEEP_LINK = "group"


def group_notice(holder: ContentHolder, settings: Settings, username: str, language_hint: str | None, command: str) -> Reply:
    """`group_notice` with one URL button to a private chat (/sos opens the crisis lines there)."""
    engine = holder.current.engine
    code = (language_hint or "").split("-")[0].lower()
    language = code if code in engine.languages else engine.languages[0]
    renderer = engine.renderer
    text = renderer.text("group_notice", language, settings.default_region) or renderer.text("welcome", language, settings.default_region) or ""
    payload = CRISIS_DEEP_LINK if command == "sos" else GROUP_DEEP_LINK
    label = renderer.button_label("private_chat", language) or PENDING_TEXTS["private_chat_button"]
    if command == "sos":
        label = renderer.button_label("sos", language) or label
    url = f"https://t.me/{username}?start={payload}"
    return Reply(text=text, buttons=(Button(label=label, action="url", url=url),))


async def _notice(message: Message, command: CommandObject, bot: Bot, holder: ContentHolder, settings: Settings, replier: Replier) -> None:
    me = await bot.me()
    if not me.username:
        log.error("group notice skipped reason=no_bot_username")
        return
    user = message.from_user
    reply = group_notice(holder, settings, me.username, language_hint(user), command.command.lower())
    await replier.sender.send(message.chat.id, render_reply(reply), private=False)
    log.info("group notice sent chat_type=%s command=%s", message.chat.type, command.command.lower())


async def notice(message: Message, command: CommandObject, bot: Bot, holder: ContentHolder, settings: Settings, replier: Replier) -> None:
    await _notice(message, command, bot, holder, settings, replier)


async def ignore(message: Message) -> None:
    """Read nothing else said in a group."""
    return None


def make_router() -> Router:
    router = Router(name=__name__)
    router.message.filter(NOT_PRIVATE)
    router.edited_message.filter(NOT_PRIVATE)
    router.message.register(notice, Command(*GROUP_COMMANDS, ignore_case=True))
    router.channel_post.register(notice, Command(*GROUP_COMMANDS, ignore_case=True))
    router.message.register(ignore)
    router.edited_message.register(ignore)
    return router
