"""The organisation's Telegram staff chat: the referral message, its Accept/Decline buttons, and the taps.

The message holds the reference, the time and the fields the person agreed to share - nothing else (no
name, no username, no chat id). Only the user ids in the organisation's `staff_ids`, tapping in its
`staff_chat_id`, can accept or decline. Staff texts are operational English, not person-facing content.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from aiogram import Bot, Router
from aiogram.exceptions import TelegramAPIError, TelegramNetworkError, TelegramRetryAfter, TelegramServerError
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from bot.referrals.channels import ChannelError, StaffButton, StaffSend
from bot.referrals.payload import PERSON_FIELDS

if TYPE_CHECKING:
    from bot.referrals.acks import AckService

log = logging.getLogger(__name__)

ACCEPT = "a"
DECLINE = "d"

ALERT_TEXTS = {
    "undeliverable": "hubbot could not deliver referral {ref} (created {at}) after every retry. "
    "The person has been told and shown crisis lines. Please check your referral endpoint.",
    "not_acknowledged": "Referral {ref} was delivered but not acknowledged in time. "
    "The person has been told and shown crisis lines; a late answer is no longer passed on.",
    "rejected": "Your referral endpoint refused referral {ref}. hubbot will try again later; "
    "please check the endpoint and its signing secret.",
}
ANSWERS = {
    "acknowledged": "Accepted. Thank you: the person has been told what happens next.",
    "declined": "Declined. The person has been told kindly and shown crisis lines.",
    "conflict": "This referral was already closed ({status}).",
    "not_allowed": "Only the staff listed for this organisation can answer referrals.",
    "unknown": "This referral no longer exists (the person may have withdrawn it).",
    "test": "This was a test referral: nothing happens.",
    "failed": "Something went wrong on our side and nothing was recorded. Please tap again in a minute.",
}
MARKS = {"acknowledged": "✅ Accepted", "declined": "↩️ Declined"}


class StaffDecision(CallbackData, prefix="rf", sep="|"):
    """A tap on Accept (`d="a"`) or Decline (`d="d"`) under referral `r` ("rf|a|<id>", under 64 bytes)."""

    d: str
    r: str


def staff_buttons(referral_id: str) -> list[StaffButton]:
    return [
        ("✅ Accept", StaffDecision(d=ACCEPT, r=referral_id).pack()),
        ("Decline", StaffDecision(d=DECLINE, r=referral_id).pack()),
    ]


def staff_message(document: Mapping[str, Any]) -> tuple[str, list[StaffButton]]:
    """Plain text (no parse mode) and buttons for a referral or an alert document."""
    ref = str(document.get("referral_id", "?"))
    test = " [TEST]" if document.get("test") else ""
    if document.get("type") == "alert":
        template = ALERT_TEXTS.get(str(document.get("alert")), "hubbot alert about referral {ref}.")
        return f"hubbot alert{test}\n" + template.format(ref=ref, at=document.get("at", "?")), []
    person = document.get("person") or {}
    lines = [f"New referral from hubbot{test}", f"Reference: {ref}", f"Created: {document.get('created_at', '?')}"]
    shared = [f"• {name}: {person[name]}" for name in PERSON_FIELDS if name in person]
    lines.append("Shared with the person's consent:" if shared else "The person agreed to be referred; no details were shared.")
    lines.extend(shared)
    lines.append("Accept if your team will follow up as you have promised; Decline if you cannot (the person is then shown crisis lines).")
    return "\n".join(lines), staff_buttons(ref)


def bot_staff_sender(bot: Bot) -> StaffSend:
    """A StaffSend over an aiogram Bot: flood limits and server errors are retryable, other refusals not."""

    async def send(chat_id: int, text: str, buttons: Sequence[StaffButton]) -> None:
        markup = None
        if buttons:
            row = [InlineKeyboardButton(text=label, callback_data=data) for label, data in buttons]
            markup = InlineKeyboardMarkup(inline_keyboard=[row])
        try:
            await bot.send_message(chat_id, text, parse_mode=None, reply_markup=markup)
        except TelegramRetryAfter as error:
            raise ChannelError("telegram: too many requests", retryable=True, retry_after=float(error.retry_after)) from error
        except (TelegramServerError, TelegramNetworkError) as error:
            raise ChannelError(f"telegram: {type(error).__name__}", retryable=True) from error
        except TelegramAPIError as error:  # chat not found, bot not a member, forbidden ...
            raise ChannelError(f"telegram: {error.message}", retryable=False) from error

    return send


def make_staff_router(acks: AckService) -> Router:
    """Handles taps on referral buttons in staff chats. Include it before the private-chat buttons router."""
    router = Router(name=__name__)

    async def tapped(callback: CallbackQuery, callback_data: StaffDecision) -> None:
        chat_id = callback.message.chat.id if callback.message is not None else None
        try:
            answer = await acks.staff_decision(
                callback_data.r, callback_data.d == ACCEPT, user_id=callback.from_user.id, chat_id=chat_id
            )
        except Exception as error:  # noqa: BLE001 - the database may be down: say so, change nothing
            log.error("staff tap failed referral=%s error=%s", callback_data.r, type(error).__name__)
            with contextlib.suppress(TelegramAPIError):
                await callback.answer(ANSWERS["failed"], show_alert=True)
            return
        text = ANSWERS.get(answer.status if answer.result == "ok" and answer.status else answer.result, ANSWERS["unknown"])
        try:
            await callback.answer(text.format(status=answer.status or "?"), show_alert=answer.result != "ok")
        except TelegramAPIError as error:
            log.warning("staff answer failed error=%s", type(error).__name__)
        if answer.result == "ok" and answer.changed and isinstance(callback.message, Message):
            mark = MARKS.get(answer.status or "", "")
            try:
                await callback.message.edit_text(f"{callback.message.text or ''}\n\n{mark}".strip(), reply_markup=None)
            except TelegramAPIError as error:
                log.warning("staff message edit failed error=%s", type(error).__name__)

    router.callback_query.register(tapped, StaffDecision.filter())
    return router
