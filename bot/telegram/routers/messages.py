"""Messages in private chats: text and captions are text turns; stickers, voice notes, photos without a
caption and other media get the engine's short kind answer (`nontext`) with the menu and SOS."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.enums import ContentType
from aiogram.types import Message

from bot.telegram.replier import Replier
from bot.telegram.routers.common import PRIVATE, language_hint


NONTEXT_TYPES = frozenset(
    {
        ContentType.STICKER,
        ContentType.VOICE,
        ContentType.PHOTO,
        ContentType.VIDEO,
        ContentType.VIDEO_NOTE,
        ContentType.AUDIO,
        ContentType.DOCUMENT,
        ContentType.ANIMATION,
        ContentType.LOCATION,
        ContentType.VENUE,
        ContentType.CONTACT,
        ContentType.POLL,
        ContentType.DICE,
        ContentType.STORY,
    }
)


async def text(message: Message, replier: Replier) -> None:
    fields = {"text": message.text or message.caption, "language_hint": language_hint(message.from_user)}
    await replier.turn(message.chat.id, fields, message_id=message.message_id)


async def nontext(message: Message, replier: Replier) -> None:
    # No text, command or button: the engine answers with its `nontext` reply, the menu and SOS.
    await replier.turn(message.chat.id, {"language_hint": language_hint(message.from_user)})


def make_router() -> Router:
    router = Router(name=__name__)
    router.message.filter(PRIVATE)
    router.message.register(text, F.text | F.caption)
    router.message.register(nontext, F.content_type.in_(NONTEXT_TYPES))
    return router
