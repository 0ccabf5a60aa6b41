"""The engine's commands in private chats: /help /sos /resources /videos ... /stop /menu.

Words after a command are read for risk: "/help i want to die" is answered as the message it is.
"""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from bot.content.models import RiskLevel
from bot.reload import ContentHolder
from bot.engine.turn import COMMANDS
from bot.telegram.replier import Replier
from bot.telegram.routers.common import PRIVATE, language_hint, risk_of


ENGINE_COMMANDS = tuple(sorted(COMMANDS - {"start"}))


async def command(message: Message, command: CommandObject, replier: Replier, holder: ContentHolder) -> None:
    hint = language_hint(message.from_user)
    text = message.text or message.caption or ""
    if command.args and risk_of(holder, command.args) >= RiskLevel.HIGH:
        await replier.turn(message.chat.id, {"text": text, "language_hint": hint}, message_id=message.message_id)
        return
    fields = {"command": command.command.lower(), "argument": command.args, "language_hint": hint}
    await replier.turn(message.chat.id, fields)


def make_router() -> Router:
    router = Router(name=__name__)
    router.message.filter(PRIVATE)
    router.message.register(command, Command(*ENGINE_COMMANDS, ignore_case=True))
    return router
