"""Which organisations take referrals and how to reach each one, read from the current content on every call.

Signing secrets come from the environment variable an organisation's `secret_env` names; during a
rotation it holds several secrets separated by commas, the new one first ("new,old"). A content
reload that changes a `referral:` block applies to the next delivery without a restart.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import Literal

import aiohttp

from bot.content.loader import Content
from bot.content.models import Organization, ReferralConfig
from bot.referrals.channels import DEFAULT_TIMEOUT_S, Channel, StaffSend, TelegramStaffChannel, WebhookChannel

log = logging.getLogger(__name__)

ChannelKind = Literal["webhook", "telegram"]


def secrets_from_env(env: Mapping[str, str], name: str | None) -> list[bytes]:
    """The comma-separated secrets in `env[name]`, in order; empty when unset."""
    if not name:
        return []
    raw = env.get(name, "")
    return [part.strip().encode("utf-8") for part in raw.split(",") if part.strip()]


class ReferralDirectory:
    """Organisations with a `referral:` block, their channels and their signing secrets."""

    def __init__(
        self,
        content: Callable[[], Content],
        *,
        staff_send: StaffSend | None = None,
        env: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
        timeout: float = DEFAULT_TIMEOUT_S,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self._content = content
        self.staff_send = staff_send
        self.env = env if env is not None else os.environ
        self.clock = clock
        self.timeout = timeout
        self._session = session
        self._owns_session = session is None

    @property
    def content(self) -> Content:
        return self._content()

    def organizations(self) -> list[Organization]:
        return [o for o in self.content.resources.organizations if o.referral is not None]

    def organization(self, org_id: str) -> Organization | None:
        return next((o for o in self.organizations() if o.id == org_id), None)

    def secrets(self, config: ReferralConfig) -> list[bytes]:
        return secrets_from_env(self.env, config.secret_env)

    def signing_organizations(self) -> list[tuple[Organization, list[bytes]]]:
        """Organisations that can sign acknowledgements: those whose secret is set."""
        out = []
        for org in self.organizations():
            assert org.referral is not None
            secrets = self.secrets(org.referral)
            if secrets:
                out.append((org, secrets))
        return out

    def primary(self, org: Organization) -> Channel | None:
        return self.channel(org, org.referral.channel) if org.referral is not None else None

    def fallback(self, org: Organization) -> Channel | None:
        if org.referral is None or org.referral.fallback is None:
            return None
        return self.channel(org, org.referral.fallback)

    def channel(self, org: Organization, kind: ChannelKind) -> Channel | None:
        """The organisation's channel of that kind, or None when its block lacks what that kind needs."""
        config = org.referral
        if config is None:
            return None
        if kind == "webhook":
            if not config.url:
                return None
            return WebhookChannel(
                config.url, self.secrets(config), self.session(), clock=self.clock, timeout=self.timeout,
                secret_env=config.secret_env,
            )
        if config.staff_chat_id is None or self.staff_send is None:
            return None
        return TelegramStaffChannel(self.staff_send, config.staff_chat_id)

    def session(self) -> aiohttp.ClientSession:
        """One HTTP session for every webhook (made on first use, inside the event loop)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
            self._owns_session = True
        return self._session

    async def close(self) -> None:
        if self._session is not None and self._owns_session and not self._session.closed:
            await self._session.close()
        self._session = None
