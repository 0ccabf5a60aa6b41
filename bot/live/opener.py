"""On a staff Accept of a `live: true` organisation: open one forum topic for the person, or, outside
hours or with nobody available, keep the asynchronous referral and show crisis lines (`live_unavailable`).
A live conversation is never promised that nobody can hold."""

from __future__ import annotations

import logging

from aiogram.exceptions import TelegramAPIError

from bot.content.models import Organization
from bot.engine.reply import Reply
from bot.engine.resources import open_state
from bot.live.deps import LiveDeps
from bot.live.replies import person_reply, staff_text
from bot.live.titles import topic_title
from bot.referrals.payload import PERSON_FIELDS
from bot.store import LiveSessionRecord, ReferralRecord

log = logging.getLogger(__name__)


def can_go_live(deps: LiveDeps, org: Organization, now: float) -> bool:
    config = org.referral
    if config is None or not config.live or config.staff_chat_id is None:
        return False
    if open_state(org.hours, now) is False:  # outside the organisation's hours (24/7 or none: always open)
        return False
    return deps.availability.any_available(org.id, config.staff_ids)


class LiveOpener:
    def __init__(self, deps: LiveDeps) -> None:
        self.deps = deps

    async def __call__(self, referral: ReferralRecord, org: Organization, chat_id: int, language: str, region: str) -> Reply | None:
        deps = self.deps
        engine = deps.engine()
        now = deps.clock()
        unavailable = person_reply(engine, "live_unavailable", language, region, now, org=org, crisis=True, next_step=True)
        if not can_go_live(deps, org, now):
            log.info("live hand-off unavailable referral=%s org=%s", referral.id, org.id)
            return unavailable
        assert org.referral is not None and org.referral.staff_chat_id is not None
        staff_chat = org.referral.staff_chat_id
        if await deps.store.get_live_session(referral.user_key) is not None:
            log.info("live hand-off unavailable referral=%s reason=already_open", referral.id)
            return unavailable
        title = topic_title(referral.payload, next(deps.numbers[org.id]), language=language, risk=None)
        try:
            topic = await deps.bot.create_forum_topic(chat_id=staff_chat, name=title)
        except TelegramAPIError as error:
            log.error("live topic not created org=%s error=%s", org.id, type(error).__name__)
            return unavailable
        record = LiveSessionRecord(referral.user_key, org.id, chat_id, staff_chat, topic.message_thread_id, now)
        if not await deps.store.open_live_session(record):
            return unavailable
        shared = ", ".join(f"{k}: {referral.payload[k]}" for k in PERSON_FIELDS if k in referral.payload and k != "alias")
        intro = staff_text("intro", ref=referral.id, org=org.name, shared=f"Shared with consent: {shared}." if shared else "")
        try:
            await deps.bot.send_message(staff_chat, intro, message_thread_id=topic.message_thread_id, parse_mode=None)
        except TelegramAPIError as error:
            log.warning("live intro not sent org=%s error=%s", org.id, type(error).__name__)
        deps.last_speaker[referral.user_key] = "staff"  # the first staff answer needs no label: live_started names them
        log.info("live hand-off opened referral=%s org=%s", referral.id, org.id)
        return person_reply(engine, "live_started", language, region, now, org=org, actions=("sos",))
