"""What the adapter keeps in memory about a chat (never on disk): its recent risks and the bot's recent messages.

Both are bounded: the last few messages of the most recently active chats. A restart forgets them.
The adapter calls the async methods (`note`, `recall`, `drop`, `record`, `take`); with HUBBOT_REDIS_URL,
subclasses in shared_state.py keep the same in Redis, so every replica sees them.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable

from bot.content.models import RiskLevel

RECENT_MESSAGES = 20  # per chat
MAX_CHATS = 20_000
DELETE_WINDOW_S = 48 * 3600 - 300  # Telegram lets a bot delete messages for 48 hours; keep a margin


class RecentRisk:
    """message_id -> risk of the last RECENT_MESSAGES messages of each chat, so an edit can be compared."""

    def __init__(self, *, per_chat: int = RECENT_MESSAGES, max_chats: int = MAX_CHATS) -> None:
        self._chats: OrderedDict[int, OrderedDict[int, RiskLevel]] = OrderedDict()
        self._per_chat = per_chat
        self._max_chats = max_chats

    def remember(self, chat_id: int, message_id: int, risk: RiskLevel) -> None:
        chat = self._chats.pop(chat_id, None) or OrderedDict()
        chat.pop(message_id, None)
        chat[message_id] = risk
        while len(chat) > self._per_chat:
            chat.popitem(last=False)
        self._chats[chat_id] = chat
        while len(self._chats) > self._max_chats:
            self._chats.popitem(last=False)

    def risk_of(self, chat_id: int, message_id: int) -> RiskLevel | None:
        chat = self._chats.get(chat_id)
        return chat.get(message_id) if chat is not None else None

    def forget(self, chat_id: int) -> None:
        self._chats.pop(chat_id, None)

    async def note(self, chat_id: int, message_id: int, risk: RiskLevel) -> None:
        self.remember(chat_id, message_id, risk)

    async def recall(self, chat_id: int, message_id: int) -> RiskLevel | None:
        return self.risk_of(chat_id, message_id)

    async def drop(self, chat_id: int) -> None:
        self.forget(chat_id)


class SentMessages:
    """Ids and times of the bot's recent messages per chat, for /forget to delete them."""

    def __init__(
        self, *, per_chat: int = 50, max_chats: int = MAX_CHATS, clock: Callable[[], float] = time.time
    ) -> None:
        self._chats: OrderedDict[int, deque[tuple[int, float]]] = OrderedDict()
        self._per_chat = per_chat
        self._max_chats = max_chats
        self._clock = clock

    def add(self, chat_id: int, message_id: int) -> None:
        chat = self._chats.pop(chat_id, None) or deque(maxlen=self._per_chat)
        chat.append((message_id, self._clock()))
        self._chats[chat_id] = chat
        while len(self._chats) > self._max_chats:
            self._chats.popitem(last=False)

    def take_deletable(self, chat_id: int) -> list[int]:
        """The ids still within Telegram's deletion window, forgetting all of them."""
        chat = self._chats.pop(chat_id, None) or deque()
        now = self._clock()
        return [message_id for message_id, at in chat if now - at < DELETE_WINDOW_S]

    async def record(self, chat_id: int, message_id: int) -> None:
        self.add(chat_id, message_id)

    async def take(self, chat_id: int) -> list[int]:
        return self.take_deletable(chat_id)
