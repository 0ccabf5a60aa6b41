"""Long polling with getUpdates, read as raw JSON so one malformed update cannot stall the queue.

aiogram's own polling validates a whole batch at once: one update it cannot parse fails the batch,
and the same batch comes back for ever. Here each update is parsed on its own (see feeder.py).
Failed polls back off exponentially (bounded); /healthz reports how long ago a poll last succeeded.

Only one process may poll a bot: Telegram answers a second getUpdates with 409 Conflict ("terminated by
other getUpdates request"). A poller that meets a 409 within its first CONFLICT_WINDOW_S raises
PollingConflict (`hubbot run` exits saying so: another instance is polling; several replicas run in
webhook mode). The instance that was polling first keeps polling and logs the conflict.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import Bot
from aiogram.exceptions import TelegramConflictError
from aiogram.methods.base import TelegramMethod

from bot.telegram.feeder import UpdateFeeder
from bot.telegram.metrics import Health, Metrics

log = logging.getLogger(__name__)

POLLING_TIMEOUT_S = 25
BASE_BACKOFF_S = 0.5
MAX_BACKOFF_S = 15.0
BATCH = 100
CONFLICT_WINDOW_S = 15.0  # long enough to meet the other poller's next request (it backs off at most 15 s)

CONFLICT_MESSAGE = (
    "another instance is already polling this bot (Telegram answered 409 Conflict to getUpdates). "
    "Stop the other instance, or run several replicas in webhook mode (hubbot run --webhook, "
    "see 'Running at scale' in the README)."
)


class PollingConflict(Exception):
    """Another process polls the same bot: this one must not start."""

    def __init__(self, description: str = "") -> None:
        super().__init__(CONFLICT_MESSAGE)
        self.description = description


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
        conflict_window: float = CONFLICT_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bot = bot
        self.feeder = feeder
        self.health = health
        self.metrics = metrics
        self.timeout = timeout
        self.allowed_updates = allowed_updates
        self.sleep = sleep
        self.conflict_window = conflict_window
        self.clock = clock
        self.offset: int | None = None
        self.conflicts = 0

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
        started = self.clock()
        while True:
            try:
                batch = await self.poll_once()
            except asyncio.CancelledError:
                raise
            except TelegramConflictError as error:
                self.conflicts += 1
                self.metrics.errors += 1
                if self.clock() - started < self.conflict_window:
                    log.error("polling refused: another instance is polling this bot status=409")
                    raise PollingConflict(error.message) from error
                log.warning(
                    "poll failed status=409: another instance is polling this bot; stop it or use webhook mode delay=%.1f",
                    delay,
                )
                await self.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF_S)
                continue
            except Exception as error:  # noqa: BLE001 - network, 5xx: keep polling
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
