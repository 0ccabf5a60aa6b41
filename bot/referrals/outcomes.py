"""How a referral ends for the person: the status change, then one kind message in their own chat.

Accepted -> `handoff_acknowledged` and the organisation's `next_step`. Declined, not acknowledged in
time, or undeliverable -> `handoff_org_declined` / `handoff_no_ack` with the crisis lines. The chat id is
read from the chat ref kept for the referral and deleted as the referral resolves. Nothing is sent to a
person who used /stop or blocked the bot, and nothing to one who used /forget (no chat ref is left).

Every ending goes through one lock, so an acknowledgement and the no-acknowledgement deadline that
race in this process cannot both reach the person.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from bot.content.models import Organization
from bot.engine.engine import Engine
from bot.engine.render import ReplyBuilder
from bot.engine.reply import Reply, escape_markup
from bot.engine.resources import crisis_block
from bot.store import FINISHED_REFERRAL_STATUSES, ReferralRecord, Store, referral_purpose

log = logging.getLogger(__name__)

PersonNotifier = Callable[[str, int, Reply], Awaitable[Any]]
LiveOpener = Callable[[ReferralRecord, Organization, int, str, str], Awaitable["Reply | None"]]
"""live_opener(referral, org, chat_id, language, region): on a staff Accept of a `live: true` organisation,
open the live conversation (bot.live) and return the person's reply instead of the usual one; None keeps it."""
"""notify_person(user_key, chat_id, reply): send the reply to that chat (the Telegram runner renders it)."""

Ending = Literal["acknowledged", "declined", "no_ack", "undeliverable"]
REPLY_FOR: dict[Ending, str] = {
    "acknowledged": "handoff_acknowledged",
    "declined": "handoff_org_declined",
    "no_ack": "handoff_no_ack",
    "undeliverable": "handoff_no_ack",
}
OPEN_STATUSES = frozenset({"pending", "delivering", "delivered", "failed"})


@dataclass(frozen=True)
class AckResult:
    """What an acknowledgement did: `ok` (applied now or already so), `conflict` or `unknown`."""

    result: Literal["ok", "conflict", "unknown"]
    status: str | None = None
    changed: bool = False


def person_reply(engine: Engine, ending: Ending, org: Organization | None, language: str, region: str, now: float) -> Reply:
    """The message for the person, from YAML only: the ending's reply, then next_step or the crisis lines."""
    renderer = engine.renderer
    builder = ReplyBuilder(renderer, language, region)
    name = escape_markup(org.name) if org is not None else ""
    if ending == "acknowledged":
        builder.say(REPLY_FOR[ending], name=name)
        if org is not None and org.referral is not None:
            step = renderer.localized(org.referral.next_step, language, region)
            if step:
                builder.add(step)
        if not builder.sections:
            builder.say("crisis_followup")
        actions = ("sos", "menu")
    else:
        builder.say(REPLY_FOR[ending], "crisis_followup", name=name)
        builder.crisis_lines(crisis_block(engine.content, region, language, now), now=now)
        actions = ("menu",)
    for action in actions:
        button = renderer.button_for_action(action, language)
        if button is not None:
            builder.step(button)
    return builder.build()


class ReferralOutcomes:
    """Applies the ending of a referral and tells the person; shared by the worker and the ack routes."""

    def __init__(
        self,
        store: Store,
        engine: Callable[[], Engine],
        notify_person: PersonNotifier | None,
        *,
        clock: Callable[[], float] = time.time,
        default_region: str = "US",
    ) -> None:
        self.store = store
        self._engine = engine
        self.notify_person = notify_person
        self.clock = clock
        self.default_region = default_region
        self.lock = asyncio.Lock()
        self.live_opener: LiveOpener | None = None  # set by bot.live when live hand-off is wired

    # --- the endings --------------------------------------------------------------------------

    async def acknowledge(self, referral_id: str, accepted: bool, *, live: bool = False) -> AckResult:
        """The organisation accepted or declined. Idempotent; a different answer after the end is a conflict.

        `live`: the Accept came from the staff chat, so a `live: true` organisation may open a live conversation."""
        status = "acknowledged" if accepted else "declined"
        async with self.lock:
            referral = await self.store.get_referral(referral_id)
            if referral is None:
                return AckResult("unknown")
            if referral.status in FINISHED_REFERRAL_STATUSES:
                same = referral.status == status
                return AckResult("ok" if same else "conflict", referral.status)
            now = self.clock()
            changed = await self.store.update_referral(referral_id, status=status, updated_at=now, last_error="")
            if not changed:  # forgotten between the read and the write
                return AckResult("unknown")
        log.info("referral acknowledged referral=%s org=%s status=%s", referral_id, referral.org_id, status)
        await self._tell_person(referral, "acknowledged" if accepted else "declined", live=live and accepted)
        return AckResult("ok", status, True)

    async def expire(self, referral: ReferralRecord, reason: str) -> bool:
        """Delivered but not acknowledged by its deadline: `dead`, and the person is told. False if it ended meanwhile."""
        async with self.lock:
            current = await self.store.get_referral(referral.id)
            now = self.clock()
            if current is None or current.status != "delivered" or current.next_attempt_at > now:
                return False
            if not await self.store.update_referral(referral.id, status="dead", updated_at=now, last_error=reason):
                return False
        log.warning("referral not acknowledged referral=%s org=%s", referral.id, referral.org_id)
        await self._tell_person(current, "no_ack")
        return True

    async def give_up(self, referral: ReferralRecord, *, attempts: int, reason: str, worker_id: str) -> bool:
        """The worker holding the claim stops trying: `dead`, and the person is told. False if the claim was lost."""
        async with self.lock:
            changed = await self.store.update_referral(
                referral.id, status="dead", attempts=attempts, last_error=reason, updated_at=self.clock(),
                if_claimed_by=worker_id,
            )
        if changed:
            log.error("referral undeliverable referral=%s org=%s attempts=%d", referral.id, referral.org_id, attempts)
            await self._tell_person(referral, "undeliverable")
        return changed

    # --- the person ---------------------------------------------------------------------------

    async def _tell_person(self, referral: ReferralRecord, ending: Ending, *, live: bool = False) -> bool:
        purpose = referral_purpose(referral.id)
        try:
            chat_id = await self.store.get_chat_ref(referral.user_key, purpose)
            if chat_id is not None:
                await self.store.delete_chat_ref(referral.user_key, purpose)  # resolved: the raw id goes now
            user, session = await self.store.load(referral.user_key)
        except Exception as error:  # noqa: BLE001 - the status is already recorded; the message is best effort
            log.error("referral ending: store failed referral=%s error=%s", referral.id, type(error).__name__)
            return False
        if chat_id is None or user is None:
            return False  # the person used /forget
        if not user.active or (session is not None and session.state.get("stopped") is True):
            log.info("referral ending not sent referral=%s reason=%s", referral.id, "inactive" if not user.active else "stopped")
            return False
        if self.notify_person is None:
            log.warning("referral ending not sent referral=%s reason=no_notifier", referral.id)
            return False
        try:
            engine = self._engine()
            language = user.language if user.language in engine.languages else engine.languages[0]
            regions = {r.id for r in engine.content.resources.regions}
            region = user.region if user.region in regions else self.default_region
            org = next((o for o in engine.content.resources.organizations if o.id == referral.org_id), None)
            reply = None
            if live and self.live_opener is not None and org is not None and org.referral is not None and org.referral.live:
                try:
                    reply = await self.live_opener(referral, org, chat_id, language, region)
                except Exception as error:  # noqa: BLE001 - no live chat then; the usual message still goes
                    log.error("live hand-off failed to open referral=%s error=%s", referral.id, type(error).__name__)
            if reply is None:
                reply = person_reply(engine, ending, org, language, region, self.clock())
            await self.notify_person(referral.user_key, chat_id, reply)
        except Exception as error:  # noqa: BLE001
            log.error("referral ending: message failed referral=%s error=%s", referral.id, type(error).__name__)
            return False
        log.info("referral ending sent referral=%s ending=%s", referral.id, ending)
        return True
