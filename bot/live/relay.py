"""Copy messages both ways with `copyMessage` (so no account is shown), flag risk, and close.

Person -> topic: text always; media only when the organisation sets `live_media`. The risk detector
reads every message first: at high/imminent the person gets the engine's crisis reply (never held back)
and the topic gets a visible flag. If no staff member has answered within `ack_within_minutes`, the
person is shown the crisis lines (once per silence). Staff -> person: only the listed `staff_ids`,
labelled with the organisation's name. No message text is stored anywhere.
"""

from __future__ import annotations

import logging

from aiogram.enums import ContentType
from aiogram.exceptions import TelegramAPIError, TelegramForbiddenError
from aiogram.types import Message

from bot.content.models import Organization, RiskLevel
from bot.live.deps import LiveDeps
from bot.live.replies import person_reply, risk_flag, staff_text
from bot.reload import ContentHolder
from bot.store import LiveSessionRecord
from bot.telegram.replier import Replier
from bot.telegram.routers.common import language_hint, risk_of

log = logging.getLogger(__name__)


class LiveRelay:
    def __init__(self, deps: LiveDeps) -> None:
        self.deps = deps

    # --- the person ---------------------------------------------------------------------------

    async def from_person(self, message: Message, session: LiveSessionRecord, replier: Replier, holder: ContentHolder) -> None:
        deps = self.deps
        text = message.text or message.caption
        risk = risk_of(holder, text) if text else RiskLevel.NONE
        if risk >= RiskLevel.HIGH:  # crisis lines first, whatever happens to the relay
            await replier.turn(message.chat.id, {"text": text, "language_hint": language_hint(message.from_user)}, message_id=message.message_id)
        org = deps.organization(session.org_id)
        if org is None or org.referral is None:
            await self.close(session.user_key, by="gone", replier=replier)
            return
        if not await self._to_topic(message, session, org, replier):
            return
        deps.last_speaker[session.user_key] = "person"
        now = deps.clock()
        if risk >= RiskLevel.HIGH:
            await self._staff_note(session, risk_flag(deps.engine(), risk.name.lower(), deps.default_region))
            return
        silence_since = session.last_staff_at if session.last_staff_at is not None else session.opened_at
        if now - silence_since >= org.referral.ack_within_minutes * 60 and deps.waiting_noticed.get(session.user_key) != silence_since:
            deps.waiting_noticed[session.user_key] = silence_since
            language, region = await deps.locale(session.user_key)
            reply = person_reply(deps.engine(), "live_waiting", language, region, now, org=org, crisis=True, actions=("sos",))
            await replier.send_reply(session.chat_id, reply, crisis=True)

    async def _to_topic(self, message: Message, session: LiveSessionRecord, org: Organization, replier: Replier) -> bool:
        assert org.referral is not None
        deps = self.deps
        is_text = message.content_type == ContentType.TEXT
        try:
            if is_text or org.referral.live_media:
                await deps.bot.copy_message(
                    chat_id=session.staff_chat_id, from_chat_id=message.chat.id, message_id=message.message_id,
                    message_thread_id=session.topic_id,
                )
                return True
            note = staff_text("media_not_passed", kind=str(message.content_type).replace("_", " "))
            if message.caption:  # a caption is text: pass it, without the media, as the bot's own message
                await deps.bot.send_message(
                    session.staff_chat_id, f"{note}\n{message.caption}", message_thread_id=session.topic_id, parse_mode=None
                )
            else:
                await deps.bot.send_message(session.staff_chat_id, note, message_thread_id=session.topic_id, parse_mode=None)
        except TelegramAPIError as error:  # topic deleted, bot removed from the group ...
            log.error("live relay to staff failed org=%s error=%s", session.org_id, type(error).__name__)
            await self.close(session.user_key, by="gone", replier=replier)
            return False
        language, region = await deps.locale(session.user_key)
        await replier.send_reply(session.chat_id, person_reply(deps.engine(), "live_text_only", language, region, deps.clock(), actions=()))
        return True

    # --- the staff ----------------------------------------------------------------------------

    async def from_staff(self, message: Message, session: LiveSessionRecord, org: Organization, replier: Replier) -> None:
        deps = self.deps
        try:
            if deps.last_speaker.get(session.user_key) != "staff":
                await deps.bot.send_message(session.chat_id, f"💬 {org.name}", parse_mode=None)
            await deps.bot.copy_message(chat_id=session.chat_id, from_chat_id=message.chat.id, message_id=message.message_id)
        except TelegramForbiddenError:
            await deps.store.close_live_session(session.user_key)
            deps.forget_memory(session.user_key)
            await self._staff_note(session, staff_text("person_unreachable"))
            return
        except TelegramAPIError as error:
            log.error("live relay to person failed org=%s error=%s", session.org_id, type(error).__name__)
            return
        deps.last_speaker[session.user_key] = "staff"
        deps.waiting_noticed.pop(session.user_key, None)
        await deps.store.touch_live_session(session.user_key, deps.clock())

    # --- closing ------------------------------------------------------------------------------

    async def close(self, user_key: str, *, by: str, replier: Replier | None, tell_person: bool = True) -> LiveSessionRecord | None:
        """Delete the mapping (one closer wins); tell the other side. `by`: person | staff | gone."""
        deps = self.deps
        closed = await deps.store.close_live_session(user_key)
        deps.forget_memory(user_key)
        if closed is None:
            return None
        log.info("live hand-off closed org=%s by=%s", closed.org_id, by)
        await self._staff_note(closed, staff_text("closed" if by == "staff" else "person_ended"))
        if tell_person and replier is not None:
            language, region = await deps.locale(user_key)
            reply_id = "live_staff_closed" if by == "staff" else "live_ended"
            reply = person_reply(deps.engine(), reply_id, language, region, deps.clock(), org=deps.organization(closed.org_id),
                                 crisis=by == "gone", actions=("menu", "sos"))
            await replier.send_reply(closed.chat_id, reply, crisis=by == "gone")
        return closed

    async def _staff_note(self, session: LiveSessionRecord, text: str) -> None:
        try:
            await self.deps.bot.send_message(session.staff_chat_id, text, message_thread_id=session.topic_id, parse_mode=None)
        except TelegramAPIError as error:
            log.warning("live staff note failed org=%s error=%s", session.org_id, type(error).__name__)
