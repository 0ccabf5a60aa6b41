"""The live router; include it before the person-facing routers and the groups router.

Private chat with an open live session: /end closes it; /forget and /stop close it and then go on to
the engine; /sos and every other command go on to the engine as usual; everything else is relayed
(after the risk check). Staff supergroup of a `live: true` organisation: /available and /away from
listed staff; in a topic, /close and listed staff's messages; anything from anyone else is ignored.
Every other update goes on untouched (SkipHandler).
"""

from __future__ import annotations

import logging

from aiogram import F, Router
from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.enums import ChatType
from aiogram.types import Message

from bot.app import HubbotApp
from bot.live.deps import LiveDeps
from bot.live.relay import LiveRelay
from bot.live.replies import staff_text
from bot.reload import ContentHolder
from bot.telegram.replier import PLATFORM, Replier

log = logging.getLogger(__name__)

CLOSING_COMMANDS = frozenset({"forget", "stop"})  # close the session, then the engine answers as usual


def command_of(message: Message) -> str | None:
    text = message.text or ""
    if not text.startswith("/"):
        return None
    return text[1:].split(maxsplit=1)[0].split("@", 1)[0].lower() if len(text) > 1 else None


def make_live_router(deps: LiveDeps, relay: LiveRelay) -> Router:
    router = Router(name=__name__)

    async def private(message: Message, hubbot: HubbotApp, replier: Replier, holder: ContentHolder) -> None:
        key = hubbot.user_key(PLATFORM, message.chat.id)
        try:
            session = await deps.store.get_live_session(key)
        except Exception as error:  # noqa: BLE001 - the database may be down: the engine answers as usual
            log.error("live session lookup failed error=%s", type(error).__name__)
            raise SkipHandler from None
        if session is None:
            raise SkipHandler
        command = command_of(message)
        if command == "end":
            await relay.close(key, by="person", replier=replier)
            return
        if command in CLOSING_COMMANDS:
            await relay.close(key, by="person", replier=replier, tell_person=False)
            raise SkipHandler
        if command is not None:
            raise SkipHandler  # /sos, /help, /menu ... answered by the engine; the session stays open
        await relay.from_person(message, session, replier, holder)

    async def staff(message: Message, replier: Replier) -> None:
        orgs = deps.live_orgs_for_chat(message.chat.id)
        if not orgs:
            raise SkipHandler  # not a live staff group: the groups router ignores it
        user_id = message.from_user.id if message.from_user is not None else None
        mine = [o for o in orgs if o.referral is not None and user_id in o.referral.staff_ids]
        if not mine:
            return  # not listed staff: read nothing, pass nothing on
        command = command_of(message)
        thread = message.message_thread_id if message.is_topic_message else None
        if command in ("available", "away"):
            for org in mine:
                deps.availability.mark(org.id, user_id, command == "available")  # type: ignore[arg-type]
            count = sum(deps.availability.count(o.id) for o in mine)
            await _say(deps, message.chat.id, thread, staff_text(command, count=count))
            return
        if thread is None:
            return  # the General topic: nothing to relay
        session = await deps.store.live_session_by_topic(message.chat.id, thread)
        if session is None or all(session.org_id != o.id for o in mine):
            await _say(deps, message.chat.id, thread, staff_text("already_closed"))
            return
        org = next(o for o in mine if o.id == session.org_id)
        if command == "close":
            if await relay.close(session.user_key, by="staff", replier=replier) is None:
                await _say(deps, message.chat.id, thread, staff_text("already_closed"))
            return
        if command is not None:
            return  # other commands in the topic are not passed on
        await relay.from_staff(message, session, org, replier)

    router.message.register(private, F.chat.type == ChatType.PRIVATE)
    router.message.register(staff, F.chat.type == ChatType.SUPERGROUP)
    return router


async def _say(deps: LiveDeps, chat_id: int, thread: int | None, text: str) -> None:
    try:
        await deps.bot.send_message(chat_id, text, message_thread_id=thread, parse_mode=None)
    except Exception as error:  # noqa: BLE001
        log.warning("live staff notice failed error=%s", type(error).__name__)
