"""my_chat_member in private chats: a person who blocks the bot is marked inactive at once."""

from __future__ import annotations

import logging

from aiogram import F, Router
from aiogram.enums import ChatMemberStatus, ChatType
from aiogram.types import ChatMemberUpdated

from bot.app import HubbotApp
from bot.telegram.replier import PLATFORM

log = logging.getLogger(__name__)


async def blocked(update: ChatMemberUpdated, hubbot: HubbotApp) -> None:
    try:
        await hubbot.store.mark_inactive(hubbot.user_key(PLATFORM, update.chat.id))
    except Exception as error:  # noqa: BLE001
        log.error("mark inactive failed error=%s", type(error).__name__)
        return
    log.info("user blocked the bot: marked inactive")


def make_router() -> Router:
    router = Router(name=__name__)
    router.my_chat_member.register(blocked, F.chat.type == ChatType.PRIVATE, F.new_chat_member.status == ChatMemberStatus.KICKED)
    return router
