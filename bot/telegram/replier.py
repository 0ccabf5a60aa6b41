"""The one path every handler takes: run a turn through the app, then send the reply it decided."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from bot.app import HubbotApp
from bot.content.models import RiskLevel
from bot.engine.decision import Decision
from bot.engine.effects import ForgetUser
from bot.engine.reply import Reply
from bot.telegram.chat_memory import RecentRisk, SentMessages
from bot.telegram.metrics import Metrics
from bot.telegram.render import render_reply
from bot.telegram.sender import Sender, SendResult

log = logging.getLogger(__name__)

PLATFORM = "telegram"
REGION_LOOKUP_TIMEOUT_S = 1.0
DELETE_BATCH = 100  # deleteMessages takes at most 100 ids


class Replier:
    """Handlers call `turn`; the error middleware calls `fallback`. Neither raises a Telegram error."""

    def __init__(
        self,
        app: HubbotApp,
        sender: Sender,
        metrics: Metrics,
        *,
        recent_risk: RecentRisk | None = None,
        sent_messages: SentMessages | None = None,
    ) -> None:
        self.app = app
        self.sender = sender
        self.metrics = metrics
        self.recent_risk = recent_risk or RecentRisk()
        self.sent_messages = sent_messages

    async def turn(self, chat_id: int, fields: Mapping[str, Any], *, message_id: int | None = None) -> Decision:
        """Answer one turn in a private chat (chat id = the person's platform id)."""
        decision = await self.app.handle(PLATFORM, chat_id, fields)
        if any(isinstance(effect, ForgetUser) for effect in decision.effects):
            await self._forget_chat(chat_id)
        await self.send_reply(chat_id, decision.reply, crisis=self._is_crisis(decision))
        if message_id is not None and decision.understanding is not None:
            await self.recent_risk.note(chat_id, message_id, decision.understanding.risk.level)
        return decision

    async def send_reply(self, chat_id: int, reply: Reply, *, crisis: bool = False) -> SendResult:
        result = await self.sender.send(chat_id, render_reply(reply))
        self.metrics.replies += 1
        if crisis:
            self.metrics.crisis_replies += 1
        return result

    async def fallback(self, chat_id: int, language_hint: str | None) -> None:
        """The engine's crisis-safe answer to an internal error; falls back to plain text if rendering fails."""
        reply: Reply | None = None
        try:
            engine = self.app.holder.current.engine
            language = _language(language_hint, engine.languages)
            region = await self._region(chat_id)
            reply = engine.safe_fallback(language, region)
            await self.send_reply(chat_id, reply, crisis=True)
        except Exception as error:  # noqa: BLE001 - the last line of defence: plain text, no markup
            log.error("fallback reply failed error=%s", type(error).__name__)
            if reply is None:
                return
            try:
                await self.sender.bot.send_message(chat_id=chat_id, text=reply.plain, parse_mode=None)
            except Exception as last:  # noqa: BLE001
                log.error("plain fallback failed error=%s", type(last).__name__)

    async def risk_of(self, chat_id: int, message_id: int) -> RiskLevel | None:
        return await self.recent_risk.recall(chat_id, message_id)

    def _is_crisis(self, decision: Decision) -> bool:
        if decision.understanding is not None and decision.understanding.risk.level >= RiskLevel.HIGH:
            return True
        try:
            rules = self.app.holder.current.content.escalation.rules
        except Exception:  # noqa: BLE001
            return False
        return any(rule.id == decision.rule and rule.do.crisis_lines == "first" for rule in rules)

    async def _region(self, chat_id: int) -> str:
        default = self.app.settings.default_region
        try:
            user, _ = await asyncio.wait_for(
                self.app.store.load(self.app.user_key(PLATFORM, chat_id)), REGION_LOOKUP_TIMEOUT_S
            )
        except Exception:  # noqa: BLE001 - the database may be what failed
            return default
        return (user.region if user is not None else None) or default

    async def _forget_chat(self, chat_id: int) -> None:
        """/forget: drop what memory holds about the chat and delete the bot's recent messages."""
        await self.recent_risk.drop(chat_id)
        if self.sent_messages is None:
            return
        ids = await self.sent_messages.take(chat_id)
        for start in range(0, len(ids), DELETE_BATCH):
            try:
                await self.sender.bot.delete_messages(chat_id=chat_id, message_ids=ids[start : start + DELETE_BATCH])
            except Exception as error:  # noqa: BLE001 - deleting is a courtesy, never a failure
                log.warning("delete messages failed error=%s count=%d", type(error).__name__, len(ids))
        log.info("forget chat deleted_messages=%d", len(ids))


def _language(hint: str | None, languages: tuple[str, ...]) -> str:
    code = (hint or "").split("-")[0].split("_")[0].lower()
    return code if code in languages else languages[0]
