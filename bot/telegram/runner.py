"""`hubbot run`: wire the bot together top to bottom, serve polling or a webhook, shut down gracefully.

`setup_dispatcher` is the one place the adapter's middlewares and routers are wired, in order.
`TelegramService` owns one running bot (the tests drive it against their Bot API server);
`run_bot` adds the checks, signals and exit codes of the command line.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aiogram import Bot, Dispatcher, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.fsm.strategy import FSMStrategy
from aiogram.utils.token import TokenValidationError, validate_token
from aiohttp import web

from bot.app import HubbotApp
from bot.content.loader import ContentError, Problem
from bot.engine.reply import Reply
from bot.live.service import build_live_service
from bot.referrals.service import build_referral_service
from bot.referrals.staff import bot_staff_sender
from bot.reload import ContentHolder
from bot.settings import Settings
from bot.store import Store, open_store
from bot.telegram.chat_memory import RecentRisk, SentMessages
from bot.telegram.commands_menu import publish_commands
from bot.telegram.feeder import UpdateFeeder
from bot.telegram.http import WEBHOOK_PATH, RouteHook, WebhookHandler, build_http_app
from bot.telegram.isolation import ChatEventIsolation, NullStorage
from bot.telegram.metrics import Health, Metrics
from bot.telegram.middlewares import FLOOD_CAPACITY, DedupMiddleware, ErrorGuardMiddleware, FloodControlMiddleware, UnknownUpdateMiddleware
from bot.telegram.polling import CONFLICT_WINDOW_S, POLLING_TIMEOUT_S, Poller, PollingConflict
from bot.telegram.render import render_reply
from bot.telegram.replier import PLATFORM, Replier
from bot.telegram.routers import admin, buttons, commands, edited, groups, membership, messages, start
from bot.telegram.sender import Sender

if TYPE_CHECKING:
    from bot.telegram.shared_state import ContentSync, SharedState

log = logging.getLogger(__name__)

DEFAULT_API_BASE = "https://api.telegram.org"
REQUEST_TIMEOUT_S = 20.0
DRAIN_TIMEOUT_S = 10.0
PURGE_EVERY_S = 24 * 3600.0
FIRST_PURGE_AFTER_S = 60.0

Sleep = Callable[[float], Awaitable[None]]


def make_bot(token: str, api_base: str = DEFAULT_API_BASE, *, timeout: float = REQUEST_TIMEOUT_S) -> Bot:
    """A Bot without a default parse mode (texts go out as entities); a local Bot API server when configured."""
    if api_base.rstrip("/") == DEFAULT_API_BASE:
        session = AiohttpSession(timeout=timeout)
    else:
        session = AiohttpSession(api=TelegramAPIServer.from_base(api_base.rstrip("/")), timeout=timeout)
    return Bot(token=token, session=session)


def setup_dispatcher(
    *,
    settings: Settings,
    holder: ContentHolder,
    store: Store,
    hubbot: HubbotApp,
    replier: Replier,
    metrics: Metrics,
    flood: FloodControlMiddleware | None = None,
    extra_routers: Sequence[Router] = (),
    shared: SharedState | None = None,
) -> Dispatcher:
    """The whole bot, top to bottom: one chat at a time in order, then our middlewares, then the routers.

    With `shared` (HUBBOT_REDIS_URL) the FSM storage, the per-chat lock, dedup and (unless `flood` is
    given) flood control live in Redis, shared by every replica; otherwise in this process.
    """
    dedup: DedupMiddleware
    if shared is not None:
        from bot.telegram.shared_state import SharedDedupMiddleware, SharedFloodControlMiddleware, UpdateGate

        storage: Any = shared.storage()
        isolation: Any = shared.isolation()
        dedup = SharedDedupMiddleware(metrics, UpdateGate(shared))
        flood = flood or SharedFloodControlMiddleware(holder, metrics, shared)
    else:
        storage, isolation = NullStorage(), ChatEventIsolation()
        dedup = DedupMiddleware(metrics)
    dispatcher = Dispatcher(
        storage=storage,
        events_isolation=isolation,
        fsm_strategy=FSMStrategy.CHAT,
        # what handlers may ask for by name
        settings=settings,
        holder=holder,
        store=store,
        hubbot=hubbot,
        replier=replier,
        metrics=metrics,
    )
    dispatcher.update.outer_middleware(UnknownUpdateMiddleware())
    dispatcher.update.outer_middleware(dedup)
    dispatcher.update.outer_middleware(ErrorGuardMiddleware(replier, metrics))
    dispatcher.update.outer_middleware(flood or FloodControlMiddleware(holder, metrics))
    dispatcher.include_routers(
        # extra routers first: the referral staff chat's Accept/Decline buttons and the live hand-off router
        # (a live staff supergroup and private chats with an open live session); they skip everything else
        *extra_routers,
        groups.make_router(),  # groups and channels: they read nothing but /start /help /sos
        admin.make_router(),
        start.make_router(),
        commands.make_router(),
        buttons.make_router(),
        messages.make_router(),
        edited.make_router(),
        membership.make_router(),
    )
    return dispatcher


def parse_listen(listen: str) -> tuple[str, int]:
    """"HOST:PORT", "[::1]:8080" or ":8080" (all interfaces)."""
    host, sep, port = listen.strip().rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"HUBBOT_LISTEN must be HOST:PORT, got {listen!r}")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


class TelegramService:
    """One running bot: the app, the dispatcher, the HTTP listener and polling or the webhook."""

    def __init__(
        self,
        settings: Settings,
        holder: ContentHolder,
        store: Store,
        bot: Bot,
        *,
        webhook: bool = False,
        sleep: Sleep = asyncio.sleep,
        polling_timeout: int = POLLING_TIMEOUT_S,
        extra_routes: Sequence[RouteHook] = (),
        extra_routers: Sequence[Router] = (),
        flood_capacity: float = FLOOD_CAPACITY,
        flood_clock: Callable[[], float] | None = None,
        drain_timeout: float = DRAIN_TIMEOUT_S,
        hubbot: HubbotApp | None = None,
        health_clock: Callable[[], float] = time.monotonic,
        shared: SharedState | None = None,
        conflict_window: float = CONFLICT_WINDOW_S,
    ) -> None:
        """`shared`: the Redis state several replicas share (HUBBOT_REDIS_URL); None keeps it all in this process.
        `flood_clock` defaults to the monotonic clock in one process and to wall-clock time when shared."""
        self.settings = settings
        self.holder = holder
        self.store = store
        self.bot = bot
        self.webhook = webhook
        self.drain_timeout = drain_timeout
        self.metrics = Metrics()
        self.health = Health(polling=not webhook, clock=health_clock)
        self.hubbot = hubbot or HubbotApp(settings, holder, store)
        self.sent_messages = shared.sent_messages() if shared is not None else SentMessages()
        recent_risk = shared.recent_risk() if shared is not None else RecentRisk()
        self.sender = Sender(
            bot, store, lambda chat_id: self.hubbot.user_key(PLATFORM, chat_id), self.metrics,
            sent_messages=self.sent_messages, sleep=sleep,
        )
        self.replier = Replier(self.hubbot, self.sender, self.metrics, recent_risk=recent_risk, sent_messages=self.sent_messages)
        self.shared = shared
        self.content_sync: ContentSync | None = None
        flood: FloodControlMiddleware
        if shared is not None:
            from bot.telegram.shared_state import ContentSync, SharedFloodControlMiddleware

            flood = SharedFloodControlMiddleware(holder, self.metrics, shared, capacity=flood_capacity, clock=flood_clock or time.time)
            self.content_sync = ContentSync(shared, holder)
        else:
            flood = FloodControlMiddleware(holder, self.metrics, capacity=flood_capacity, clock=flood_clock or time.monotonic)
        self.dispatcher = setup_dispatcher(
            settings=settings, holder=holder, store=store, hubbot=self.hubbot, replier=self.replier,
            metrics=self.metrics, flood=flood, extra_routers=extra_routers, shared=shared,
        )
        self.allowed_updates = self.dispatcher.resolve_used_update_types()
        self.feeder = UpdateFeeder(self.dispatcher, bot, self.metrics)
        self.poller: Poller | None = None
        self.webhook_handler: WebhookHandler | None = None
        if webhook:
            secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else ""
            # Replicas answer Telegram only once an update is handled: a chat stays in order across them,
            # and an update whose replica died is sent again rather than lost (see shared_state.py).
            self.webhook_handler = WebhookHandler(
                self.dispatcher, bot, self.feeder, secret, self.metrics, answer_after_handling=shared is not None
            )
        else:
            self.poller = Poller(
                bot, self.feeder, self.health, self.metrics, timeout=polling_timeout,
                allowed_updates=self.allowed_updates, conflict_window=conflict_window,
            )
        self.http_app = build_http_app(
            holder, self.metrics, self.health, webhook=self.webhook_handler, extra_routes=extra_routes,
            extra_health=self._shared_health if shared is not None else None,
        )
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.port: int | None = None
        self.failed = asyncio.Event()  # set when the service cannot go on (another instance polls the bot)
        self.failure: BaseException | None = None

    @property
    def base_url(self) -> str:
        host, _ = parse_listen(self.settings.listen)
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        return f"http://{shown}:{self.port}"

    async def start(self) -> None:
        """Listen, then start polling (or register the webhook). Raises when the listener or webhook fails."""
        await self._listen()
        if self.webhook:
            assert self.settings.webhook_url is not None and self.settings.webhook_secret is not None
            if urlsplit(self.settings.webhook_url).path.rstrip("/") != WEBHOOK_PATH:
                log.warning("webhook url path differs from %s: the proxy in front must forward to it", WEBHOOK_PATH)
            await self.bot.set_webhook(
                url=self.settings.webhook_url,
                secret_token=self.settings.webhook_secret.get_secret_value(),
                allowed_updates=self.allowed_updates,
            )
            log.info("webhook set mode=webhook")
        else:
            assert self.poller is not None
            self._tasks.append(asyncio.create_task(self._poll(self.poller), name="polling"))
            log.info("polling started mode=polling")
        if self.content_sync is not None:
            self._tasks.append(asyncio.create_task(self.content_sync.run(), name="content-sync"))
            assert self.shared is not None
            log.info("shared state: redis prefix=%s replica=%s", self.shared.prefix, self.shared.replica)
        self._tasks.append(asyncio.create_task(self._publish_commands(), name="commands"))
        self._tasks.append(asyncio.create_task(self._purge_daily(), name="purge"))

    async def stop(self) -> None:
        """Stop taking updates, let the ones in flight finish (bounded), then close the listener."""
        if self.content_sync is not None:
            self.content_sync.close()
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            # Bounded: a background task that swallowed its cancel (a redis-py call, Python 3.11) must not
            # hold up the shutdown.
            done, pending = await asyncio.wait(self._tasks, timeout=5.0)
            for task in done:
                with suppress(asyncio.CancelledError, Exception):
                    task.result()
            if pending:
                log.warning("background tasks still running at shutdown count=%d", len(pending))
        self._tasks.clear()
        if self.webhook and self._runner is not None:
            await self._runner.cleanup()  # no new webhook requests while draining
            self._runner = None
        cancelled = await self.feeder.drain(self.drain_timeout)
        if self.poller is not None:
            await self.poller.confirm()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        log.info("stopped cancelled_updates=%d", cancelled)

    async def _listen(self) -> None:
        host, port = parse_listen(self.settings.listen)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        self._runner = web.AppRunner(self.http_app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()
        log.info("listening host=%s port=%d", host, self.port)

    async def _poll(self, poller: Poller) -> None:
        try:
            await poller.run()
        except PollingConflict as conflict:
            self.failure = conflict
            self.failed.set()

    async def _shared_health(self) -> Mapping[str, Any]:
        assert self.shared is not None
        report: dict[str, Any] = {
            "shared_state": "redis",
            "redis": "ok" if await self.shared.healthy() else "unreachable",
        }
        if self.content_sync is not None:
            report.update(self.content_sync.report())
        return report

    async def _publish_commands(self) -> None:
        await publish_commands(self.bot, self.holder.current)

    async def _purge_daily(self) -> None:
        await asyncio.sleep(FIRST_PURGE_AFTER_S)
        while True:
            await self.hubbot.purge_old()
            await asyncio.sleep(PURGE_EVERY_S)


# --- the command line -----------------------------------------------------------------------------


def _print(message: str) -> None:
    print(message, file=sys.stderr)


def _shown(directory: Path, problem: Problem) -> str:
    path = Path(problem.path)
    return str(Problem(str(path if path.is_absolute() else Path(directory) / path), problem.line, problem.message))


def check_startup(settings: Settings, *, webhook: bool) -> tuple[int, ContentHolder | None]:
    """(0, loaded holder) or (exit code, None) after printing why: 2 for settings, 1 for content."""
    token = settings.bot_token.get_secret_value().strip() if settings.bot_token is not None else ""
    if not token:
        _print("hubbot run: BOT_TOKEN is not set. Create a bot with @BotFather and set BOT_TOKEN (environment or .env).")
        return 2, None
    try:
        validate_token(token)
    except TokenValidationError:
        _print("hubbot run: BOT_TOKEN does not look like a bot token (expected <digits>:<secret> from @BotFather).")
        return 2, None
    if webhook and not (settings.webhook_url and settings.webhook_secret and settings.webhook_secret.get_secret_value()):
        _print("hubbot run --webhook: set HUBBOT_WEBHOOK_URL (public https URL) and HUBBOT_WEBHOOK_SECRET.")
        return 2, None
    try:
        parse_listen(settings.listen)
    except ValueError as error:
        _print(f"hubbot run: {error}")
        return 2, None
    if "://" in settings.db and not (settings.hash_key and settings.hash_key.get_secret_value()):
        _print("hubbot run: HUBBOT_DB is a database URL: set HUBBOT_HASH_KEY (every replica must use the same key).")
        return 2, None
    holder = ContentHolder(settings.content)
    try:
        holder.load()
    except ContentError as error:
        for problem in error.problems:
            _print(_shown(settings.content, problem))
        _print(f"hubbot run: refusing to start: {len(error.problems)} problem(s) in the content at {settings.content}")
        return 1, None
    return 0, holder


def run_bot(settings: Settings, *, webhook: bool, extra_routes: Sequence[RouteHook] = ()) -> int:
    """Exit codes: 0 after a clean shutdown, 1 invalid content or a start-up failure, 2 missing settings."""
    code, holder = check_startup(settings, webhook=webhook)
    if holder is None:
        return code
    return asyncio.run(_serve(settings, holder, webhook=webhook, extra_routes=extra_routes))


async def _serve(settings: Settings, holder: ContentHolder, *, webhook: bool, extra_routes: Sequence[RouteHook]) -> int:
    store = open_store(settings.db)
    try:
        await store.open()
    except Exception as error:  # noqa: BLE001
        _print(f"hubbot run: cannot open the database HUBBOT_DB ({type(error).__name__})")
        return 1
    shared: SharedState | None = None
    if settings.redis_url is not None and settings.redis_url.get_secret_value().strip():
        try:
            shared = await _open_shared(settings, store)
        except Exception as error:  # noqa: BLE001 - redis missing, unreachable, bad URL
            _print(f"hubbot run: {error}")
            await store.close()
            return 1
    elif webhook and "://" in settings.db:
        log.warning("HUBBOT_DB is shared but HUBBOT_REDIS_URL is unset: run one replica only (see 'Running at scale')")
    assert settings.bot_token is not None
    bot = make_bot(settings.bot_token.get_secret_value().strip(), settings.telegram_api_base)
    service: TelegramService | None = None

    async def notify_person(user_key: str, chat_id: int, reply: Reply) -> None:
        # A referral's outcome (accepted, declined, no answer in time) reaches the person through the same sender.
        assert service is not None
        await service.sender.send(chat_id, render_reply(reply))

    referrals = build_referral_service(
        store, lambda: holder.current.engine, notify_person=notify_person, staff_send=bot_staff_sender(bot),
        default_region=settings.default_region,
    )
    live = build_live_service(store, bot, lambda: holder.current.engine, referrals, default_region=settings.default_region)
    service = TelegramService(
        settings, holder, store, bot, webhook=webhook, shared=shared,
        extra_routes=[*extra_routes, referrals.mount], extra_routers=[referrals.staff_router(), live.router()],
    )
    stop = asyncio.Event()
    stop_referrals = asyncio.Event()
    referral_task: asyncio.Task[None] | None = None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    with suppress(NotImplementedError, RuntimeError):
        holder.install_sighup(loop)
    code = 0
    try:
        try:
            await service.start()
        except Exception as error:  # noqa: BLE001 - port in use, webhook refused ...
            _print(f"hubbot run: could not start ({type(error).__name__}: {error})")
            code = 1
        else:
            referral_task = asyncio.create_task(referrals.run(stop_referrals), name="referrals")
            stopped = asyncio.create_task(stop.wait())
            failed = asyncio.create_task(service.failed.wait())
            await asyncio.wait({stopped, failed}, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            failed.cancel()
            if service.failure is not None:
                _print(f"hubbot run: {service.failure}")
                code = 1
            log.info("shutting down")
    finally:
        stop_referrals.set()
        if referral_task is not None:
            with suppress(Exception):
                await asyncio.wait_for(referral_task, timeout=10)
        await service.stop()
        with suppress(Exception):
            await referrals.close()
        await store.close()
        if shared is not None:
            await shared.close()
        await bot.session.close()
    return code


async def _open_shared(settings: Settings, store: Store) -> SharedState:
    """The Redis state replicas share; raises with a message naming what is missing or unreachable."""
    from bot.store.identity import load_or_create_hash_key

    try:
        from bot.telegram.shared_state import SharedState
    except ImportError as error:
        raise RuntimeError(
            "HUBBOT_REDIS_URL is set but the redis package is not installed; install the scale extra: pip install 'hubbot[scale]'"
        ) from error

    assert settings.redis_url is not None
    configured = settings.hash_key.get_secret_value() if settings.hash_key is not None else None
    shared = SharedState(
        settings.redis_url.get_secret_value().strip(),
        prefix=settings.redis_prefix,
        hash_key=load_or_create_hash_key(configured, settings.db),
    )
    try:
        await shared.open()
    except BaseException:
        await shared.close()
        raise
    return shared
