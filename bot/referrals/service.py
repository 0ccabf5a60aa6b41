"""Wire the referral parts together once, for `hubbot run`: directory, endings, worker and acknowledgements."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiogram import Router
from aiohttp import web

from bot.content.loader import Content
from bot.engine.engine import Engine
from bot.referrals.acks import AckService
from bot.referrals.channels import StaffSend
from bot.referrals.directory import ReferralDirectory
from bot.referrals.outcomes import PersonNotifier, ReferralOutcomes
from bot.referrals.worker import ReferralWorker, Sleep
from bot.store import Store


@dataclass
class ReferralService:
    directory: ReferralDirectory
    outcomes: ReferralOutcomes
    worker: ReferralWorker
    acks: AckService

    def mount(self, app: web.Application) -> None:
        """RouteHook for the HTTP listener's `extra_routes`: adds `POST /referrals/ack`."""
        self.acks.mount(app)

    def staff_router(self) -> Router:
        """The staff-chat Accept/Decline router; include it before the private-chat buttons router."""
        from bot.referrals.staff import make_staff_router

        return make_staff_router(self.acks)

    async def run(self, stop: asyncio.Event) -> None:
        """The worker until `stop` is set; then the HTTP session is closed."""
        try:
            await self.worker.run_forever(stop)
        finally:
            await self.directory.close()

    async def close(self) -> None:
        await self.directory.close()


def build_referral_service(
    store: Store,
    engine: Callable[[], Engine],
    *,
    notify_person: PersonNotifier | None,
    staff_send: StaffSend | None = None,
    clock: Callable[[], float] = time.time,
    sleep: Sleep = asyncio.sleep,
    env: Mapping[str, str] | None = None,
    default_region: str = "US",
    worker_id: str | None = None,
    content: Callable[[], Content] | None = None,
    **worker_options: Any,
) -> ReferralService:
    """`engine` returns the current Engine (e.g. `lambda: holder.current.engine`), so reloads apply at once;
    `content` (default: the engine's) is where the organisations' referral blocks are read."""
    directory = ReferralDirectory(content or (lambda: engine().content), staff_send=staff_send, env=env, clock=clock)
    outcomes = ReferralOutcomes(store, engine, notify_person, clock=clock, default_region=default_region)
    worker = ReferralWorker(store, directory, clock, sleep, worker_id, outcomes=outcomes, **worker_options)
    acks = AckService(directory, outcomes, clock=clock)
    return ReferralService(directory, outcomes, worker, acks)
