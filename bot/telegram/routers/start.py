"""/start, with an optional deep-link payload ("crisis", "topic-anxiety"), in private chats."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import CommandObject, CommandStart
from aiogram.types import Message

from bot.telegram.replier import Replier
from bot.telegram.routers.common import PRIVATE, language_hint


async def start(message: Message, command: CommandObject, replier: Replier) -> None:
    fields = {"command": "start", "argument": command.args, "language_hint": language_hint(message.from_user)}
    await replier.turn(message.chat.id, fields)


def make_router() -> Router:
    router = Router(name=__name__)
    router.message.filter(PRIVATE)
    router.message.register(start, CommandStart(ignore_case=True))
    return router
