"""What the live parts share: the store, the bot, the current content and engine, the clock, and the
in-memory state (staff availability, topic numbers, who spoke last, waiting notices)."""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from aiogram import Bot

from bot.content.models import Organization
from bot.engine.engine import Engine
from bot.live.availability import StaffAvailability
from bot.store import Store


@dataclass
class LiveDeps:
    store: Store
    bot: Bot
    engine: Callable[[], Engine]
    clock: Callable[[], float] = time.time
    default_region: str = "US"
    availability: StaffAvailability = field(default_factory=StaffAvailability)
    numbers: defaultdict[str, Iterator[int]] = field(default_factory=lambda: defaultdict(lambda: itertools.count(1)))
    last_speaker: dict[str, str] = field(default_factory=dict)  # user_key -> "person" | "staff"
    waiting_noticed: dict[str, float] = field(default_factory=dict)  # user_key -> silence start already noticed

    def organization(self, org_id: str) -> Organization | None:
        return next((o for o in self.engine().content.resources.organizations if o.id == org_id), None)

    def live_orgs_for_chat(self, chat_id: int) -> list[Organization]:
        """The `live: true` organisations whose staff supergroup is `chat_id`."""
        return [
            o for o in self.engine().content.resources.organizations
            if o.referral is not None and o.referral.live and o.referral.staff_chat_id == chat_id
        ]

    def forget_memory(self, user_key: str) -> None:
        self.last_speaker.pop(user_key, None)
        self.waiting_noticed.pop(user_key, None)

    async def locale(self, user_key: str) -> tuple[str, str]:
        """The person's language and region (the defaults when the store cannot say)."""
        engine = self.engine()
        try:
            user, _ = await self.store.load(user_key)
        except Exception:  # noqa: BLE001
            user = None
        language = user.language if user is not None and user.language in engine.languages else engine.languages[0]
        regions = {r.id for r in engine.content.resources.regions}
        region = user.region if user is not None and user.region in regions else self.default_region
        return language, region
