"""The service both shells share: load the session, call the engine, apply the effects in one transaction."""

from __future__ import annotations

import asyncio

import logging
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bot.reload import ContentHolder
from bot.engine.decision import Decision
from bot.engine.effects import ForgetUser, NotifyStaff, QueueReferral, SaveEvent, StopUser
from bot.engine.session import SessionState
from bot.engine.turn import Turn
from bot.settings import Settings
from bot.store import EventRecord, ReferralRecord, SessionRecord, Store, UserRecord, referral_purpose
from bot.store.identity import load_or_create_hash_key, user_key

log = logging.getLogger(__name__)

DAY_S = 86_400.0
StaffNotifier = Callable[[str], Awaitable[None]]


@dataclass(frozen=True)
class PurgeResult:
    events: int
    referrals: int


class HubbotApp:
    """One turn at a time per person (the shell serialises a chat's updates); never raises to the shell."""

    def __init__(
        self,
        settings: Settings,
        holder: ContentHolder,
        store: Store,
        *,
        clock: Callable[[], float] = time.time,
        hash_key: bytes | None = None,
        staff_notifier: StaffNotifier | None = None,
    ) -> None:
        self.settings = settings
        self.holder = holder
        self.store = store
        self.clock = clock
        configured = settings.hash_key.get_secret_value() if settings.hash_key is not None else None
        self.hash_key = hash_key or load_or_create_hash_key(configured, settings.db)
        self.staff_notifier = staff_notifier

    def user_key(self, platform: str, platform_id: int) -> str:
        return user_key(self.hash_key, platform, platform_id)

    async def handle(self, platform: str, platform_id: int, turn_kwargs: Mapping[str, Any]) -> Decision:
        """Answer one turn. Store or engine failures are logged (class only) and never block the reply."""
        key = self.user_key(platform, platform_id)
        now = self.clock()
        await self._maybe_reload()
        engine = self.holder.current.engine
        user, state = await self._load(key)
        fields = {name: value for name, value in turn_kwargs.items() if name not in ("user_key", "now")}
        try:
            turn = Turn(key, now=now, **fields)
        except TypeError as error:  # a shell passed an unknown field: still answer, safely
            log.error("turn rejected error=%s platform=%s", type(error).__name__, platform)
            turn = Turn(key, now=now)
        region = state.region if state is not None else self.settings.default_region
        try:
            decision = engine.handle(state, turn, default_region=self.settings.default_region)
        except Exception as error:  # noqa: BLE001 - Engine.handle catches its own; this is belt and braces
            reply = engine.safe_fallback(state.language if state else engine.languages[0], region)
            decision = Decision(reply, state or engine.new_session(None, region), (), None, "internal_error", error)
        if decision.error is not None:
            self._log_engine_error(decision.error)
        await self._apply(key, user, decision, now, platform_id)
        self._log_turn(platform, turn, decision)
        return decision

    async def purge_old(self) -> PurgeResult:
        """Delete events and finished referrals older than the retention settings."""
        now = self.clock()
        events = referrals = 0
        try:
            events = await self.store.purge_events(now - self.settings.event_retention_days * DAY_S)
            referrals = await self.store.purge_referrals(now - self.settings.referral_retention_days * DAY_S)
        except Exception as error:  # noqa: BLE001
            log.error("purge failed error=%s", type(error).__name__)
        log.info("purged events=%d referrals=%d", events, referrals)
        return PurgeResult(events, referrals)

    # --- internals --------------------------------------------------------------------------------

    async def _maybe_reload(self) -> None:
        if not self.holder.check_due():
            return
        try:
            # A reload builds the understander (about half a second): off the event loop, so other chats go on.
            await asyncio.to_thread(self.holder.maybe_reload)
        except Exception as error:  # noqa: BLE001 - a reload problem never blocks a reply
            log.error("content check failed error=%s", type(error).__name__)

    async def _load(self, key: str) -> tuple[UserRecord | None, SessionState | None]:
        engine = self.holder.current.engine
        try:
            user, record = await self.store.load(key)
        except Exception as error:  # noqa: BLE001 - continue with a fresh session
            log.error("session load failed error=%s", type(error).__name__)
            return None, None
        if record is not None:
            try:
                language = (user.language if user else None) or engine.languages[0]
                region = (user.region if user else None) or self.settings.default_region
                return user, SessionState.from_dict(record.state, language=language, region=region)
            except Exception as error:  # noqa: BLE001
                log.error("session unreadable error=%s", type(error).__name__)
        if user is not None and (user.language or user.region):
            language = user.language if user.language in engine.languages else engine.languages[0]
            return user, SessionState(language=language, region=user.region or self.settings.default_region)
        return user, None

    async def _apply(self, key: str, user: UserRecord | None, decision: Decision, now: float, platform_id: int) -> None:
        effects = decision.effects
        try:
            if any(isinstance(effect, ForgetUser) for effect in effects):
                deleted = await self.store.forget(key)
                log.info("forgot user rows=%d", deleted)
                return
            state = decision.session
            if user is None:
                user = UserRecord.new(key, now, language=state.language, region=state.region)
            user = UserRecord(
                user_key=key,
                language=state.language,
                region=state.region,
                consent=dict(user.consent),
                created_at=user.created_at,
                last_seen=now,
                active=True,
            )
            events = [
                EventRecord(key, now, e.kind, e.intent, e.risk, e.rule, e.resources) for e in effects if isinstance(e, SaveEvent)
            ]
            referrals = [ReferralRecord.new(key, e.org_id, dict(e.payload), now) for e in effects if isinstance(e, QueueReferral)]
            chat_refs = {referral_purpose(r.id): platform_id for r in referrals}
            await self.store.save_turn(
                user, SessionRecord(key, state.to_dict(), now), events, referrals, chat_refs=chat_refs or None
            )
        except Exception as error:  # noqa: BLE001 - the reply goes out whatever the database does
            log.error("store failed error=%s", type(error).__name__)
        for effect in effects:
            if isinstance(effect, NotifyStaff):
                await self._notify_staff(effect.text)
            elif isinstance(effect, StopUser):
                log.info("user stopped")

    async def _notify_staff(self, text: str) -> None:
        if self.staff_notifier is None:
            log.info("staff notice (no staff channel configured): %s", text)
            return
        try:
            await self.staff_notifier(text)
        except Exception as error:  # noqa: BLE001
            log.error("staff notice failed error=%s", type(error).__name__)

    def _log_engine_error(self, error: BaseException) -> None:
        if self.settings.debug_text:
            log.error("engine failed error=%s\n%s", type(error).__name__, "".join(traceback.format_exception(error)))
        else:
            # The class only: an exception message or traceback could carry what the person wrote.
            log.error("engine failed error=%s", type(error).__name__)

    def _log_turn(self, platform: str, turn: Turn, decision: Decision) -> None:
        intent = decision.understanding.intent.intent_id if decision.understanding else None
        extra = ""
        if self.settings.debug_text and turn.text is not None:
            extra = f" text={turn.text!r}"
        log.info(
            "turn platform=%s kind=%s command=%s rule=%s risk=%s intent=%s resources=%s%s",
            platform,
            turn.kind,
            turn.command or (turn.button.action if turn.button else None),
            decision.rule,
            decision.risk,
            intent,
            ",".join(decision.reply.resources) or "-",
            extra,
        )
