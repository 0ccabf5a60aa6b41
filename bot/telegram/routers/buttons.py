"""Callback queries (inline button taps) in private chats -> a ButtonPress turn. Every query is answered."""

from __future__ import annotations

import logging

from aiogram import Router
from aiogram.enums import ChatType
from aiogram.types import CallbackQuery

from bot.engine.turn import ButtonPress
from bot.telegram.callbacks import press_from
from bot.telegram.replier import Replier
from bot.telegram.routers.common import language_hint

log = logging.getLogger(__name__)


async def pressed(callback: CallbackQuery, replier: Replier) -> None:
    try:
        await callback.answer()  # first: the spinner on the button stops at once
    except Exception as error:  # noqa: BLE001 - too old, or answered already: the turn still runs
        log.warning("callback answer failed error=%s", type(error).__name__)
    chat = callback.message.chat if callback.message is not None else None
    if chat is not None and chat.type != ChatType.PRIVATE:
        return  # the bot puts no callback buttons in groups
    chat_id = chat.id if chat is not None else callback.from_user.id
    press = press_from(callback.data) or ButtonPress("menu")  # an unknown (old) button opens the menu
    await replier.turn(chat_id, {"button": press, "language_hint": language_hint(callback.from_user)})


def make_router() -> Router:
    router = Router(name=__name__)
    router.callback_query.register(pressed)
    return router
