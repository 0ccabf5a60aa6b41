"""Per-chat ordering for aiogram: a lock per chat, dropped when unused, and an FSM storage that keeps nothing.

aiogram's `SimpleEventIsolation` and `MemoryStorage` keep one entry per chat for ever; a support bot
meets many people once, so these forget a chat as soon as nothing of it is in flight. asyncio.Lock
is first-come first-served, so a chat's updates run one at a time in the order they arrived.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Hashable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from aiogram.fsm.state import State
from aiogram.fsm.storage.base import BaseEventIsolation, BaseStorage, StorageKey
from aiogram.fsm.storage.memory import SimpleEventIsolation


class ChatEventIsolation(SimpleEventIsolation):
    """SimpleEventIsolation whose locks are removed when no update of the chat holds or awaits them."""

    def __init__(self) -> None:
        super().__init__()
        self._entries: dict[Hashable, list[Any]] = {}  # key -> [lock, users]

    @asynccontextmanager
    async def lock(self, key: StorageKey) -> AsyncGenerator[None, None]:
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = [asyncio.Lock(), 0]
        entry[1] += 1
        try:
            async with entry[0]:
                yield
        finally:
            entry[1] -= 1
            if entry[1] == 0 and self._entries.get(key) is entry:
                del self._entries[key]

    @property
    def active_chats(self) -> int:
        return len(self._entries)

    async def close(self) -> None:
        self._entries.clear()


class NullStorage(BaseStorage):
    """The bot keeps no FSM state (sessions live in the store): nothing is remembered here."""

    async def set_state(self, key: StorageKey, state: str | State | None = None) -> None:
        return None

    async def get_state(self, key: StorageKey) -> str | None:
        return None

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        return None

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        return {}

    async def close(self) -> None:
        return None


__all__ = ["BaseEventIsolation", "ChatEventIsolation", "NullStorage"]
