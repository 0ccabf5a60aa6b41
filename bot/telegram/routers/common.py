"""Small helpers the routers share: the private-chat filter, the language hint, a risk check."""

from __future__ import annotations

import logging

from aiogram import F
from aiogram.enums import ChatType
from aiogram.types import User

from bot.content.models import RiskLevel
from bot.reload import ContentHolder

log = logging.getLogger(__name__)

PRIVATE = F.chat.type == ChatType.PRIVATE
NOT_PRIVATE = F.chat.type != ChatType.PRIVATE


def language_hint(user: User | None) -> str | None:
    return user.language_code if user is not None else None


def risk_of(holder: ContentHolder, text: str) -> RiskLevel:
    """The risk of `text` alone (pure, no session); HIGH when it cannot be assessed, so nothing risky is missed."""
    try:
        return holder.current.understander.understand(text).risk.level
    except Exception as error:  # noqa: BLE001
        log.error("risk check failed error=%s", type(error).__name__)
        return RiskLevel.HIGH
