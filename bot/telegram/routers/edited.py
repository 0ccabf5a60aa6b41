"""Edited messages in private chats: assessed again, answered only when the risk rose above the original's."""

from __future__ import annotations

import logging

from aiogram import F, Router
from aiogram.types import Message

from bot.content.models import RiskLevel
from bot.reload import ContentHolder
from bot.telegram.replier import Replier
from bot.telegram.routers.common import PRIVATE, language_hint, risk_of

log = logging.getLogger(__name__)


def risk_rose(before: RiskLevel | None, now: RiskLevel) -> bool:
    """Rose above what the original got; an original we no longer remember counts as answered below high."""
    if before is None:
        return now >= RiskLevel.HIGH
    return now > before


async def edited(message: Message, replier: Replier, holder: ContentHolder) -> None:
    text = message.text or message.caption or ""
    chat_id, message_id = message.chat.id, message.message_id
    before = await replier.risk_of(chat_id, message_id)
    now = risk_of(holder, text)
    if not risk_rose(before, now):
        log.info("edit not answered risk=%s before=%s", now.label, before.label if before is not None else "-")
        return
    log.info("edit answered risk=%s before=%s", now.label, before.label if before is not None else "-")
    await replier.turn(chat_id, {"text": text, "language_hint": language_hint(message.from_user)}, message_id=message_id)
    answered = await replier.risk_of(chat_id, message_id)
    await replier.recent_risk.note(chat_id, message_id, max(now, answered) if answered is not None else now)


def make_router() -> Router:
    router = Router(name=__name__)
    router.edited_message.filter(PRIVATE)
    router.edited_message.register(edited, F.text | F.caption)
    return router
