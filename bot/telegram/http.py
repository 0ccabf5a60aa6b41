"""The HTTP listener on HUBBOT_LISTEN: /healthz, /metrics, the webhook path, and routes others mount.

- `GET /healthz`: 200 `{"status": "ok", "content_hash", "polling_ok_age_s"}`; 503 when the content is
  not loaded or (polling) the last successful getUpdates is older than 60 s.
- `GET /metrics`: counters as plain text, nothing about anyone.
- `POST /telegram/webhook` (webhook mode): the `X-Telegram-Bot-Api-Secret-Token` header must equal
  HUBBOT_WEBHOOK_SECRET (401 otherwise). One process: the update is answered 200 at once and handled in
  the background. Several replicas (HUBBOT_REDIS_URL): 200 only once it has been handled, 503 when it
  should come again (another replica still holds it, or this one is shutting down); a replica that dies
  mid-update leaves Telegram without an answer, so Telegram sends the update again, to another replica.
- `extra_routes`: callables that add routes (the referrals package mounts its acknowledgement endpoint).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web

from bot.reload import ContentHolder
from bot.telegram.feeder import UpdateFeeder
from bot.telegram.metrics import Health, Metrics

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/telegram/webhook"
RouteHook = Callable[[web.Application], None]
HealthExtra = Callable[[], Awaitable[Mapping[str, Any]]]
MAX_UPDATE_BYTES = 1024 * 1024


class WebhookHandler(SimpleRequestHandler):
    """aiogram's SimpleRequestHandler, with each update parsed on its own and run through the feeder."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        bot: Bot,
        feeder: UpdateFeeder,
        secret_token: str,
        metrics: Metrics,
        *,
        answer_after_handling: bool = False,
    ) -> None:
        super().__init__(dispatcher=dispatcher, bot=bot, handle_in_background=True, secret_token=secret_token)
        self.feeder = feeder
        self.metrics = metrics
        self.answer_after_handling = answer_after_handling

    def verify_secret(self, telegram_secret_token: str, bot: Bot) -> bool:
        if not self.secret_token:  # never serve a webhook anyone could post to
            return False
        ok = super().verify_secret(telegram_secret_token, bot)
        if not ok:
            log.warning("webhook refused status=401 reason=secret")
        return ok

    async def _handle_request_background(self, bot: Bot, request: web.Request) -> web.Response:
        try:
            raw: Any = await request.json(loads=bot.session.json_loads)
        except ValueError:
            self.metrics.malformed += 1
            log.warning("webhook body is not JSON status=400")
            return web.Response(status=400, text="Bad Request")
        if self.answer_after_handling:
            if not await self.feeder.process_raw(raw):
                return web.Response(status=503, text="Retry Later")
            return web.json_response({})
        self.feeder.feed_raw(raw)  # a malformed update is logged and skipped: 200, so it is not resent
        return web.json_response({})

    async def close(self) -> None:
        """The runner owns the bot session; nothing to close here."""
        return None


def health_report(holder: ContentHolder, health: Health) -> tuple[int, dict[str, Any]]:
    loaded = holder.loaded
    age = health.polling_age()
    ok = loaded and health.polling_ok()
    body = {
        "status": "ok" if ok else "fail",
        "content_hash": holder.current.content.digest if loaded else None,
        "polling_ok_age_s": round(age, 1) if age is not None else None,
    }
    return (200 if ok else 503), body


def build_http_app(
    holder: ContentHolder,
    metrics: Metrics,
    health: Health,
    *,
    webhook: WebhookHandler | None = None,
    extra_routes: Sequence[RouteHook] = (),
    extra_health: HealthExtra | None = None,
) -> web.Application:
    """`extra_health` adds fields to /healthz without deciding its status (the shared state's report)."""
    app = web.Application(client_max_size=MAX_UPDATE_BYTES)

    async def healthz(request: web.Request) -> web.Response:
        status, body = health_report(holder, health)
        if extra_health is not None:
            try:
                body.update(await extra_health())
            except Exception as error:  # noqa: BLE001 - extras never fail the health check
                log.warning("health extras failed error=%s", type(error).__name__)
        return web.json_response(body, status=status)

    async def metrics_view(request: web.Request) -> web.Response:
        return web.Response(text=metrics.render(), content_type="text/plain")

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_view)
    if webhook is not None:
        app.router.add_post(WEBHOOK_PATH, webhook.handle)
    for hook in extra_routes:
        hook(app)
    return app
