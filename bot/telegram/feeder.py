"""Parse raw updates one by one and run each as its own task; drain the tasks on shutdown.

Polling and the webhook both come through here. A malformed update is logged (its id and the names
of the fields that failed, never a value) and skipped, so it can never block the ones after it.
Tasks start in arrival order and aiogram's per-chat lock keeps each chat's updates in that order.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.types import Update
from pydantic import ValidationError

from bot.telegram.metrics import Metrics

log = logging.getLogger(__name__)

MAX_FIELDS_LOGGED = 3


class UpdateBusy(Exception):
    """Another replica holds this update and has not finished it in time: Telegram should send it again later."""


def parse_update(raw: Any, bot: Bot) -> Update | None:
    """The Update, or None (logged) when it does not validate."""
    update_id = raw.get("update_id") if isinstance(raw, dict) else None
    try:
        return Update.model_validate(raw, context={"bot": bot})
    except ValidationError as error:
        fields = sorted({".".join(str(part) for part in e["loc"]) for e in error.errors(include_input=False)})
        log.warning(
            "update malformed update_id=%s error=%s fields=%s",
            update_id if isinstance(update_id, int) else "-",
            type(error).__name__,
            ",".join(fields[:MAX_FIELDS_LOGGED]) or "-",
        )
        return None


class UpdateFeeder:
    """Feeds updates to the dispatcher as tasks and keeps track of those still running."""

    def __init__(self, dispatcher: Dispatcher, bot: Bot, metrics: Metrics, **data: Any) -> None:
        self.dispatcher = dispatcher
        self.bot = bot
        self.metrics = metrics
        self.data = data
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def feed_raw(self, raw: Any) -> bool:
        """Parse and start one raw update; False when it was malformed and skipped."""
        self.metrics.updates += 1
        update = parse_update(raw, self.bot)
        if update is None:
            self.metrics.malformed += 1
            return False
        self.feed(update)
        return True

    def feed(self, update: Update) -> asyncio.Task[bool]:
        task = asyncio.create_task(self._run(update), name=f"update-{update.update_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def process_raw(self, raw: Any) -> bool:
        """Parse one raw update and wait until it has been handled (the webhook answers Telegram after this).

        True when the update needs no redelivery (handled, a duplicate, malformed, or failed in a way a
        retry would repeat); False when it should come again: another replica still holds it, or shutdown
        cancelled it. If the waiting request is cancelled, the update goes on running (drained on stop).
        """
        self.metrics.updates += 1
        update = parse_update(raw, self.bot)
        if update is None:
            self.metrics.malformed += 1
            return True
        task = self.feed(update)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if task.cancelled() and (current is None or not current.cancelling()):
                return False
            raise

    async def _run(self, update: Update) -> bool:
        try:
            await self.dispatcher.feed_update(self.bot, update, **self.data)
        except UpdateBusy:
            return False
        except Exception as error:  # noqa: BLE001 - only outside the handlers' own guard (middleware bugs)
            self.metrics.errors += 1
            log.error("update failed update_id=%s error=%s", update.update_id, type(error).__name__)
        return True

    async def drain(self, timeout: float) -> int:
        """Wait up to `timeout` seconds for the running updates; cancel the rest and return how many."""
        tasks = set(self._tasks)
        if not tasks:
            return 0
        log.info("draining updates in_flight=%d timeout=%.0f", len(tasks), timeout)
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
            log.warning("drain timed out cancelled=%d", len(pending))
        return len(pending)
