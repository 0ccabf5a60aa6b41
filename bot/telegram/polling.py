"""Long polling with getUpdates, read as raw JSON so one malformed update cannot stall the queue.

aiogram's own polling validates a whole batch at once: one update it cannot parse fails the batch,
and the same batch comes back for ever. Here each update is parsed on its own (see feeder.py).
Failed polls back off exponentially (bounded); /healthz reports how long ago a poll last succeeded.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import Bot
from aiogram.methods.base import TelegramMethod

from bot.telegram.feeder import UpdateFeeder
from bot.telegram.metrics import Health, Metrics

log = logging.getLogger(__name__)

POLLING_TIMEOUT_S = 25
BASE_BACKOFF_S = 0.5
MAX_BACKOFF_S = 15.0
BATCH = 100


class RawGetUpdates(TelegramMethod[list[dict[str, Any]]]):
    """getUpdates whose result stays a list of dicts (parsed one by one later)."""

    __returning__ = list[dict[str, Any]]
    __api_method__ = "getUpdates"

    offset: int | None = None
    limit: int | None = None
    timeout: int | None = None
    allowed_updates: list[str] | None = None


class Poller:
    def __init__(
        self,
        bot: Bot,
        feeder: UpdateFeeder,
        health: Health,
        metrics: Metrics,
        *,
        timeout: int = POLLING_TIMEOUT_S,
        allowed_updates: list[str] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.bot = bot
        self.feeder = feeder
        self.health = health
        self.metrics = metrics
        self.timeout = timeout
        self.allowed_updates = allowed_updates
        self.sleep = sleep
        self.offset: int | None = None

    async def run(self) -> None:
        """Poll until cancelled. Deletes a webhook first (getUpdates refuses to run while one is set)."""
        delay = BASE_BACKOFF_S
        while True:
            try:
                await self.bot.delete_webhook(drop_pending_updates=False)
                break
            except Exception as error:  # noqa: BLE001
                log.warning("delete webhook failed error=%s delay=%.1f", type(error).__name__, delay)
                await self.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF_S)
        delay = BASE_BACKOFF_S
        while True:
            try:
                batch = await self.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - network, 409, 5xx: keep polling
                self.metrics.errors += 1
                log.warning("poll failed error=%s delay=%.1f", type(error).__name__, delay)
                await self.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF_S)
                continue
            delay = BASE_BACKOFF_S
            for raw in batch:
                self._advance(raw)
                self.feeder.feed_raw(raw)

    async def poll_once(self) -> list[dict[str, Any]]:
        method = RawGetUpdates(offset=self.offset, limit=BATCH, timeout=self.timeout, allowed_updates=self.allowed_updates)
        request_timeout = int((self.bot.session.timeout or 0) + self.timeout)
        batch = await self.bot(method, request_timeout=request_timeout)
        self.health.poll_succeeded()
        return batch

    def _advance(self, raw: Any) -> None:
        update_id = raw.get("update_id") if isinstance(raw, dict) else None
        if isinstance(update_id, int) and not isinstance(update_id, bool):
            self.offset = max(self.offset or 0, update_id + 1)
        else:
            log.warning("update without update_id skipped")

    async def confirm(self) -> None:
        """On shutdown: confirm what was taken, so a restart does not get the same updates again."""
        if self.offset is None:
            return
        try:
            await self.bot(RawGetUpdates(offset=self.offset, limit=1, timeout=0), request_timeout=5)
        except Exception as error:  # noqa: BLE001
            log.warning("confirm offset failed error=%s", type(error).__name__)
