"""Update middlewares, outermost first: skip unknown update types, drop duplicates, turn any handler
exception into the crisis-safe fallback, and throttle floods without ever holding back a risky message.

All of them run inside aiogram's per-chat lock (events isolation), so a chat's updates pass one at a time.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.enums import ChatType
from aiogram.types import Chat, TelegramObject, Update, User
from aiogram.types.update import UpdateTypeLookupError

from bot.content.models import RiskLevel
from bot.reload import ContentHolder
from bot.telegram.callbacks import press_from
from bot.telegram.metrics import Metrics
from bot.telegram.replier import Replier

log = logging.getLogger(__name__)

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]

DEDUP_SIZE = 10_000
FLOOD_CAPACITY = 10.0  # messages a person may send in a burst
FLOOD_REFILL_PER_S = 1.0  # and then one a second
FLOOD_MAX_USERS = 50_000
URGENT_ACTIONS = frozenset({"sos"})
URGENT_COMMANDS = ("/sos", "/start crisis")


def _chat_type(data: dict[str, Any]) -> str:
    chat: Chat | None = data.get("event_chat")
    return chat.type if chat is not None else "-"


class UnknownUpdateMiddleware(BaseMiddleware):
    """Log each update by id, type and chat type; skip a type this aiogram does not know (aiogram would
    warn with the update's whole JSON, text included)."""

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        if isinstance(event, Update):
            try:
                kind = event.event_type
            except UpdateTypeLookupError:
                log.warning("update skipped update_id=%s reason=unknown_type", event.update_id)
                return UNHANDLED
            log.debug("update update_id=%s type=%s chat_type=%s", event.update_id, kind, _chat_type(data))
        return await handler(event, data)


class DedupMiddleware(BaseMiddleware):
    """Each update_id is handled once (a bounded LRU of the last DEDUP_SIZE ids)."""

    def __init__(self, metrics: Metrics, size: int = DEDUP_SIZE) -> None:
        self.metrics = metrics
        self.size = size
        self._seen: OrderedDict[int, None] = OrderedDict()

    def first_time(self, update_id: int) -> bool:
        """Record `update_id`; False when it was already seen. No await: safe against concurrent duplicates."""
        if update_id in self._seen:
            self._seen.move_to_end(update_id)
            return False
        self._seen[update_id] = None
        while len(self._seen) > self.size:
            self._seen.popitem(last=False)
        return True

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        if isinstance(event, Update) and not self.first_time(event.update_id):
            self.metrics.duplicates += 1
            log.info("update skipped update_id=%s reason=duplicate", event.update_id)
            return UNHANDLED
        return await handler(event, data)


class ErrorGuardMiddleware(BaseMiddleware):
    """Any exception below: log the class and update id (never text) and send the crisis-safe fallback."""

    def __init__(self, replier: Replier, metrics: Metrics) -> None:
        self.replier = replier
        self.metrics = metrics

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        try:
            return await handler(event, data)
        except Exception as error:  # noqa: BLE001 - this is the net under every handler
            self.metrics.errors += 1
            update_id = event.update_id if isinstance(event, Update) else None
            log.error(
                "handler failed update_id=%s chat_type=%s error=%s", update_id, _chat_type(data), type(error).__name__
            )
            chat: Chat | None = data.get("event_chat")
            user: User | None = data.get("event_from_user")
            if chat is not None and chat.type == ChatType.PRIVATE:
                await self.replier.fallback(chat.id, user.language_code if user else None)
            if isinstance(event, Update) and event.callback_query is not None:
                try:
                    await event.callback_query.answer()
                except Exception:  # noqa: BLE001 - already answered, or too old
                    pass
            return None


class FloodControlMiddleware(BaseMiddleware):
    """A token bucket per person in private chats. Over the limit, an update is dropped, unless it is
    urgent: /sos, the SOS button, or a message whose risk is high or imminent (assessed only then)."""

    def __init__(
        self,
        holder: ContentHolder,
        metrics: Metrics,
        *,
        capacity: float = FLOOD_CAPACITY,
        refill_per_s: float = FLOOD_REFILL_PER_S,
        clock: Callable[[], float] = time.monotonic,
        max_users: int = FLOOD_MAX_USERS,
    ) -> None:
        self.holder = holder
        self.metrics = metrics
        self.capacity = capacity
        self.refill_per_s = refill_per_s
        self.clock = clock
        self.max_users = max_users
        self._buckets: OrderedDict[int, tuple[float, float]] = OrderedDict()  # user -> (tokens, at)

    def take(self, user_id: int) -> bool:
        now = self.clock()
        tokens, at = self._buckets.pop(user_id, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - at) * self.refill_per_s)
        allowed = tokens >= 1.0
        self._buckets[user_id] = (tokens - 1.0 if allowed else tokens, now)
        while len(self._buckets) > self.max_users:
            self._buckets.popitem(last=False)
        return allowed

    async def allow(self, user_id: int) -> bool:
        """Whether the person has a token left (the Redis-backed subclass shares buckets across replicas)."""
        return self.take(user_id)

    def urgent(self, update: Update) -> bool:
        if update.callback_query is not None:
            press = press_from(update.callback_query.data)
            return press is not None and press.action in URGENT_ACTIONS
        message = update.message or update.edited_message
        if message is None:
            return False
        text = message.text or message.caption
        if not text:
            return False
        lowered = text.strip().lower()
        if lowered.startswith(URGENT_COMMANDS):
            return True
        try:
            return self.holder.current.understander.understand(text).risk.level >= RiskLevel.HIGH
        except Exception as error:  # noqa: BLE001 - when unsure, let it through
            log.error("flood risk check failed error=%s", type(error).__name__)
            return True

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user: User | None = data.get("event_from_user")
        chat: Chat | None = data.get("event_chat")
        if not isinstance(event, Update) or user is None or chat is None or chat.type != ChatType.PRIVATE:
            return await handler(event, data)
        if await self.allow(user.id) or self.urgent(event):
            return await handler(event, data)
        self.metrics.throttled += 1
        log.info("update throttled update_id=%s chat_type=%s", event.update_id, chat.type)
        if event.callback_query is not None:
            try:
                await event.callback_query.answer()
            except Exception:  # noqa: BLE001
                pass
        return UNHANDLED
