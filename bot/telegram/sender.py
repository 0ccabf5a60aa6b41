"""Send a reply's messages in order, riding out Telegram's flood limits, blocks, bad requests and network errors.

- 429: sleep `retry_after`, then send the same message again;
- 403 (the person blocked the bot): mark them inactive and send nothing more;
- 400 on one message: log it and go on with the next (a refused keyboard or entity is dropped first and
  the text sent again, so a bad button never costs anyone the crisis lines);
- network and 5xx errors: retry with exponential backoff, a bounded number of times.

Logs give the status, Telegram's description and the message's index in the reply; never the text.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from aiogram import Bot
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)

from bot.store import Store
from bot.telegram.chat_memory import SentMessages
from bot.telegram.metrics import Metrics
from bot.telegram.render import OutgoingMessage

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]

MAX_ATTEMPTS = 6
BASE_BACKOFF_S = 0.5
MAX_BACKOFF_S = 8.0
MAX_RETRY_AFTER_S = 120.0
_MARKUP_ERRORS = ("button", "reply markup", "keyboard")
_ENTITY_ERRORS = ("entities", "entity")


@dataclass(frozen=True)
class SendResult:
    sent: int
    failed: int
    blocked: bool


class Sender:
    """Sends OutgoingMessages to one chat at a time; never raises a Telegram error to the caller."""

    def __init__(
        self,
        bot: Bot,
        store: Store,
        user_key: Callable[[int], str],
        metrics: Metrics,
        *,
        sent_messages: SentMessages | None = None,
        sleep: Sleep = asyncio.sleep,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self.bot = bot
        self.store = store
        self.user_key = user_key
        self.metrics = metrics
        self.sent_messages = sent_messages
        self.sleep = sleep
        self.max_attempts = max_attempts

    async def send(self, chat_id: int, messages: Sequence[OutgoingMessage], *, private: bool = True) -> SendResult:
        """Send in order. In a private chat a 403 marks the person inactive; in a group it only stops."""
        sent = failed = 0
        for index, message in enumerate(messages):
            outcome = await self._send_one(chat_id, message, index)
            if outcome == "blocked":
                if private:
                    await self._blocked(chat_id)
                return SendResult(sent, failed + len(messages) - index, True)
            if outcome == "sent":
                sent += 1
            else:
                failed += 1
        return SendResult(sent, failed, False)

    async def _send_one(self, chat_id: int, message: OutgoingMessage, index: int) -> str:
        with_entities = with_markup = True
        attempt = 0
        while True:
            attempt += 1
            try:
                result = await self.bot.send_message(
                    chat_id=chat_id, **message.kwargs(with_entities=with_entities, with_markup=with_markup)
                )
            except TelegramRetryAfter as error:
                wait = float(error.retry_after)
                if attempt >= self.max_attempts or wait > MAX_RETRY_AFTER_S:
                    return self._give_up(index, "retry_after", attempt)
                log.warning("send throttled status=429 retry_after=%s message=%d attempt=%d", error.retry_after, index, attempt)
                await self.sleep(wait)
            except TelegramForbiddenError:
                log.warning("send refused status=403 message=%d: marking the user inactive", index)
                return "blocked"
            except TelegramBadRequest as error:
                reason = error.message.lower()
                if with_markup and message.reply_markup is not None and any(k in reason for k in _MARKUP_ERRORS):
                    log.error("send refused status=400 message=%d reason=%r: sending again without the keyboard", index, _short(error))
                    with_markup = False
                    continue
                if with_entities and message.entities and any(k in reason for k in _ENTITY_ERRORS):
                    log.error("send refused status=400 message=%d reason=%r: sending again without entities", index, _short(error))
                    with_entities = False
                    continue
                log.error("send failed status=400 message=%d reason=%r", index, _short(error))
                self.metrics.send_failures += 1
                return "failed"
            except (TelegramNetworkError, TelegramServerError) as error:
                if attempt >= self.max_attempts:
                    return self._give_up(index, type(error).__name__, attempt)
                delay = min(BASE_BACKOFF_S * 2 ** (attempt - 1), MAX_BACKOFF_S)
                log.warning("send retry error=%s message=%d attempt=%d delay=%.1f", type(error).__name__, index, attempt, delay)
                await self.sleep(delay)
            except TelegramAPIError as error:
                log.error("send failed error=%s message=%d", type(error).__name__, index)
                self.metrics.send_failures += 1
                return "failed"
            else:
                self.metrics.messages_sent += 1
                if self.sent_messages is not None:
                    await self.sent_messages.record(chat_id, result.message_id)
                return "sent"

    def _give_up(self, index: int, reason: str, attempt: int) -> str:
        log.error("send gave up reason=%s message=%d attempts=%d", reason, index, attempt)
        self.metrics.send_failures += 1
        return "failed"

    async def _blocked(self, chat_id: int) -> None:
        self.metrics.blocked += 1
        try:
            await self.store.mark_inactive(self.user_key(chat_id))
        except Exception as error:  # noqa: BLE001 - a database problem must not break the shell
            log.error("mark inactive failed error=%s", type(error).__name__)


def _short(error: TelegramAPIError) -> str:
    """Telegram's description (it names the problem, never the text), bounded for the log line."""
    return error.message[:120]
