"""Delivery channels: a signed HTTPS webhook, or a message with Accept/Decline buttons in a staff chat.

A channel delivers one `Outbound` document and says what happened, never raising for a delivery
problem: `delivered`; `retry` (429, 5xx, 408, timeouts, connection errors; `retry_after` when the
receiver asked for a pause); or `failed` (any other refusal, with the reason), which the worker
records and retries only after its longest delay.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

import aiohttp

from bot.referrals.payload import canonical_json
from bot.referrals.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature_header

log = logging.getLogger(__name__)

Outcome = Literal["delivered", "retry", "failed"]
DEFAULT_TIMEOUT_S = 10.0
MAX_RETRY_AFTER_S = 3600.0
MAX_REASON_CHARS = 200
USER_AGENT = "hubbot-referrals/1"
IDEMPOTENCY_HEADER = "Idempotency-Key"
RETRYABLE_HTTP = frozenset({408, 425, 429})
LOOPBACK_NAMES = frozenset({"localhost"})


@dataclass(frozen=True)
class Outbound:
    """One document to deliver, and the key the receiver deduplicates it on."""

    key: str
    document: dict[str, Any]

    @property
    def body(self) -> bytes:
        return canonical_json(self.document)


@dataclass(frozen=True)
class DeliveryResult:
    outcome: Outcome
    reason: str = ""
    retry_after: float | None = None  # seconds the receiver asked us to wait (429 / 503 Retry-After)

    @property
    def delivered(self) -> bool:
        return self.outcome == "delivered"


class Channel(Protocol):
    async def deliver(self, message: Outbound) -> DeliveryResult: ...


class ChannelError(Exception):
    """A staff-chat send failed; `retryable` says whether trying again later can help."""

    def __init__(self, reason: str, *, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.retry_after = retry_after


def short_reason(text: str) -> str:
    """A receiver's error text, single-line and bounded, for `last_error` and logs."""
    flat = " ".join(text.split())
    return flat[:MAX_REASON_CHARS]


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Retry-After as seconds from `now`: delta-seconds or an HTTP date; capped at an hour."""
    if not value:
        return None
    text = value.strip()
    seconds: float | None = None
    if text.isdigit():
        seconds = float(text)
    else:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.timezone.utc)
        seconds = when.timestamp() - now
    return max(0.0, min(seconds, MAX_RETRY_AFTER_S))


def url_is_acceptable(url: str) -> bool:
    """HTTPS, or plain HTTP to this machine only (local development and tests)."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return True
    if parts.scheme != "http" or not parts.hostname:
        return False
    host = parts.hostname
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class WebhookChannel:
    """POST the canonical JSON body, signed, with `Idempotency-Key`; redirects are never followed."""

    def __init__(
        self,
        url: str,
        secrets: Sequence[bytes],
        session: aiohttp.ClientSession,
        *,
        clock: Callable[[], float] = time.time,
        timeout: float = DEFAULT_TIMEOUT_S,
        secret_env: str | None = None,
    ) -> None:
        self.url = url
        self.secrets = list(secrets)
        self.session = session
        self.clock = clock
        self.timeout = timeout
        self.secret_env = secret_env

    async def deliver(self, message: Outbound) -> DeliveryResult:
        if not url_is_acceptable(self.url):
            return DeliveryResult("failed", "refusing to send: the referral url must be https://")
        if not self.secrets:
            return DeliveryResult("failed", f"signing secret not set (environment variable {self.secret_env or '?'})")
        body = message.body
        timestamp = int(self.clock())
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": USER_AGENT,
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: signature_header(self.secrets, timestamp, body),
            IDEMPOTENCY_HEADER: message.key,
        }
        try:
            async with self.session.post(
                self.url,
                data=body,
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            ) as response:
                status = response.status
                text = await _read_reason(response)
                retry_after = parse_retry_after(response.headers.get("Retry-After"), self.clock())
        except asyncio.TimeoutError:
            return DeliveryResult("retry", f"timeout after {self.timeout:g}s")
        except aiohttp.ClientError as error:
            return DeliveryResult("retry", f"connection error: {type(error).__name__}")
        reason = f"HTTP {status}" + (f": {text}" if text else "")
        if 200 <= status < 300:
            return DeliveryResult("delivered", f"HTTP {status}")
        if status in RETRYABLE_HTTP or status >= 500:
            return DeliveryResult("retry", reason, retry_after)
        if 300 <= status < 400:
            return DeliveryResult("failed", f"HTTP {status}: redirect not followed")
        return DeliveryResult("failed", reason)


async def _read_reason(response: aiohttp.ClientResponse) -> str:
    try:
        raw = await response.content.read(2048)
    except (aiohttp.ClientError, asyncio.TimeoutError):
        return ""
    return short_reason(raw.decode("utf-8", "replace"))


StaffButton = tuple[str, str]  # (label, callback data)
StaffSend = Callable[[int, str, Sequence[StaffButton]], Awaitable[None]]
"""Send `text` with inline buttons to a chat; raise ChannelError when it fails."""


class TelegramStaffChannel:
    """A message in the organisation's staff chat: the consented fields and Accept/Decline buttons."""

    def __init__(self, send: StaffSend, chat_id: int) -> None:
        self.send = send
        self.chat_id = chat_id

    async def deliver(self, message: Outbound) -> DeliveryResult:
        from bot.referrals.staff import staff_message  # the staff chat's wording and buttons live there

        text, buttons = staff_message(message.document)
        try:
            await self.send(self.chat_id, text, buttons)
        except ChannelError as error:
            return DeliveryResult("retry" if error.retryable else "failed", short_reason(error.reason), error.retry_after)
        except asyncio.TimeoutError:
            return DeliveryResult("retry", "timeout")
        return DeliveryResult("delivered", "sent to the staff chat")
