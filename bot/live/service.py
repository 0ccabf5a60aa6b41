"""Wire live hand-off for `hubbot run`: `build_live_service(...)`, then include `service.router()` in
`extra_routers` (before the person-facing routers) and the referral outcomes open live sessions on Accept."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from aiogram import Bot, Router

from bot.engine.engine import Engine
from bot.live.deps import LiveDeps
from bot.live.opener import LiveOpener
from bot.live.relay import LiveRelay
from bot.live.router import make_live_router
from bot.referrals.service import ReferralService
from bot.store import Store


@dataclass
class LiveService:
    deps: LiveDeps
    opener: LiveOpener
    relay: LiveRelay

    def router(self) -> Router:
        return make_live_router(self.deps, self.relay)


def build_live_service(
    store: Store,
    bot: Bot,
    engine: Callable[[], Engine],
    referrals: ReferralService | None = None,
    *,
    clock: Callable[[], float] = time.time,
    default_region: str = "US",
) -> LiveService:
    deps = LiveDeps(store, bot, engine, clock=clock, default_region=default_region)
    service = LiveService(deps, LiveOpener(deps), LiveRelay(deps))
    if referrals is not None:
        referrals.outcomes.live_opener = service.opener
    return service
