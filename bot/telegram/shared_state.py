"""State several replicas share through Redis (HUBBOT_REDIS_URL): the scale-out mode.

With HUBBOT_REDIS_URL set, `setup_dispatcher` swaps the in-process pieces for these:

- `SharedEventIsolation`: aiogram's `RedisEventIsolation`, so one chat is handled by one replica at a
  time. A chat's updates first queue on a local first-come first-served lock (so a replica keeps
  their order), then take a short Redis lock that the holder renews while it works: a replica that
  dies (SIGKILL, OOM) frees its chats within `LOCK_TTL_S`, not the 60 s aiogram uses by default.
- `SharedStorage`: aiogram's `RedisStorage` (the bot keeps no FSM state today; anything that ever does
  is shared). Reads fail soft, so Redis trouble never stands between a person and the crisis reply.
- `SharedDedupMiddleware`: each update_id is handled once across replicas. `SET NX` with a short,
  renewed lease claims an update; when it is handled the key becomes `done` for a day (Telegram drops
  undelivered updates after 23 hours). A copy that meets a claim waits for it to finish or to lapse
  (its replica died) and then takes it over; nothing is skipped on the strength of a dead replica.
  sendMessage has no idempotency key, so one case answers twice: a replica killed after its reply left
  and before it marked the update done. Twice, never none: that is the side a crisis bot errs on.
- `SharedFloodControlMiddleware`: the per-person token bucket lives in Redis (one Lua script), so a
  person whose messages land on three replicas gets one allowance, not three.
- `SharedRecentRisk`, `SharedSentMessages`: the risk of a chat's recent messages (an edit is answered
  only if its risk rose, whichever replica saw the original) and the ids of the bot's recent messages
  (`/forget` deletes them all, whichever replica sent them), for Telegram's 48-hour window.
- `ContentSync`: a replica whose content digest changes writes it to Redis; a replica that reads a digest
  other than its own (every half second) reloads its content directory at once (and checks its files
  every second anyway), so a reload reaches every replica within seconds; /healthz shows both digests.

In the webhook mode the listener answers Telegram only after an update has been handled (see http.py):
Telegram sends a chat's next update only after the previous one was answered, which keeps a chat in
order across replicas, and an update whose replica died unanswered is sent again (through the proxy, to
another replica) instead of being lost.

Privacy: no raw Telegram id appears in a Redis key. Chat and user ids are turned into keyed hashes with
HUBBOT_HASH_KEY (the same key as the database's user ids); values are counters, leases and digests.

Every Redis failure is logged (class only) and degrades to this process's own state: the bot keeps
answering, at worst a duplicate answer during an outage.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import math
import os
import secrets
import socket
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.fsm.storage.base import KeyBuilder, StorageKey
from aiogram.fsm.storage.redis import RedisEventIsolation, RedisStorage
from aiogram.types import TelegramObject, Update

from bot.content.models import RiskLevel
from bot.reload import ContentHolder, content_fingerprint
from bot.telegram.chat_memory import DELETE_WINDOW_S, RecentRisk, SentMessages
from bot.telegram.feeder import UpdateBusy
from bot.telegram.isolation import ChatEventIsolation
from bot.telegram.metrics import Metrics
from bot.telegram.middlewares import FLOOD_CAPACITY, FLOOD_REFILL_PER_S, DedupMiddleware, FloodControlMiddleware

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]

REDIS_MISSING = (
    "HUBBOT_REDIS_URL is set but the redis package is not installed; install the scale extra: pip install 'hubbot[scale]'"
)
SOCKET_TIMEOUT_S = 3.0
LOCK_TTL_S = 6.0  # a chat lock lapses this long after its replica stopped renewing it
LOCK_WAIT_S = 45.0  # then a chat's update goes ahead anyway (logged): Redis never holds back a reply for good
LOCK_POLL_S = 0.01
CLAIM_LEASE_S = 6.0  # an update's claim lapses this long after its replica stopped renewing it
CLAIM_WAIT_S = 30.0  # a copy waits this long for another replica's claim, then asks Telegram to retry (503)
CLAIM_POLL_S = 0.05
DONE_TTL_S = 25 * 3600.0  # Telegram gives up on an update after 23 hours
FSM_TTL = timedelta(days=7)
CONTENT_TICK_S = 0.5
ERROR_LOG_EVERY_S = 30.0

_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
return 0
"""
_ABANDON = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""
# A token bucket: {t: tokens, a: when}. Never refills backwards when replicas' clocks disagree a little.
_TAKE = """
local capacity = tonumber(ARGV[1])
local refill = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local data = redis.call('hmget', KEYS[1], 't', 'a')
local tokens = tonumber(data[1])
local at = tonumber(data[2])
if tokens == nil or at == nil then
  tokens = capacity
  at = now
end
if now > at then
  tokens = math.min(capacity, tokens + (now - at) * refill)
  at = now
end
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('hset', KEYS[1], 't', tostring(tokens), 'a', tostring(at))
redis.call('pexpire', KEYS[1], ARGV[4])
return allowed
"""


def import_redis() -> Any:
    try:
        import redis.asyncio as redis_asyncio
    except ImportError as exc:
        raise RuntimeError(REDIS_MISSING) from exc
    return redis_asyncio


def redis_errors() -> tuple[type[BaseException], ...]:
    """What a Redis call raises when Redis is down, slow or refuses: all of it degrades, none of it crashes."""
    from redis.exceptions import RedisError

    return (RedisError, OSError, asyncio.TimeoutError)


def redact_redis_url(url: str) -> str:
    """The URL without its password, for messages."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.netloc.rsplit("@", 1)[1]
        return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))
    except ValueError:
        return "<unparsable Redis URL>"


def replica_id() -> str:
    """host:pid:random, unique per process start."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class _Throttled:
    """Log a recurring error at most once per ERROR_LOG_EVERY_S (Redis down = one line a minute, not a flood)."""

    def __init__(self) -> None:
        self._last: dict[str, float] = {}

    def error(self, what: str, error: BaseException) -> None:
        now = time.monotonic()
        if now - self._last.get(what, float("-inf")) >= ERROR_LOG_EVERY_S:
            self._last[what] = now
            log.error("redis %s failed, using this process's own state error=%s", what, type(error).__name__)


class Renewal:
    """Calls `renew()` every `every` seconds in a task until `stop()`. Stopping is an event, not only a cancel,
    so the loop ends even if a Redis client call swallowed the cancellation."""

    def __init__(self, renew: Callable[[], Awaitable[Any]], every: float, state: SharedState, what: str) -> None:
        self._renew = renew
        self._every = every
        self._state = state
        self._what = what
        self._stopped = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                await asyncio.wait_for(self._stopped.wait(), self._every)
                return
            except asyncio.TimeoutError:
                pass
            try:
                await self._renew()
            except Exception as error:  # noqa: BLE001
                self._state.throttled.error(self._what, error)

    async def stop(self) -> None:
        self._stopped.set()
        self._task.cancel()
        await asyncio.wait({self._task}, timeout=1.0)


class SharedState:
    """One Redis client, the key prefix and the keyed hash that keeps raw Telegram ids out of Redis."""

    def __init__(self, url: str, *, prefix: str, hash_key: bytes, replica: str | None = None, redis: Redis | None = None) -> None:
        self.url = url
        self.prefix = prefix
        self._hash_key = hash_key
        self.replica = replica or replica_id()
        if redis is None:
            redis_asyncio = import_redis()
            from redis.asyncio.retry import Retry
            from redis.backoff import ExponentialBackoff

            redis = redis_asyncio.Redis.from_url(
                url,
                decode_responses=True,
                socket_timeout=SOCKET_TIMEOUT_S,
                socket_connect_timeout=SOCKET_TIMEOUT_S,
                health_check_interval=30,
                # Fail fast: a reply must not wait out a long retry schedule while Redis is away.
                retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), 2),
            )
        self.redis: Redis = redis
        self.errors = redis_errors()
        self.throttled = _Throttled()

    def __repr__(self) -> str:
        return f"SharedState({redact_redis_url(self.url)!r}, prefix={self.prefix!r})"

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def opaque(self, *ids: object) -> str:
        """A keyed hash of ids (never reversible without HUBBOT_HASH_KEY), short enough for a key."""
        text = ":".join(str(i) for i in ids)
        return hmac.new(self._hash_key, b"redis:" + text.encode(), hashlib.sha256).hexdigest()[:32]

    async def open(self) -> None:
        """Check that Redis answers; raises with the (password-less) URL when it does not."""
        try:
            await asyncio.wait_for(self.redis.ping(), SOCKET_TIMEOUT_S * 2)
        except self.errors as error:
            raise ConnectionError(f"cannot reach Redis at {redact_redis_url(self.url)}: {type(error).__name__}: {error}") from error

    async def healthy(self) -> bool:
        try:
            return bool(await asyncio.wait_for(self.redis.ping(), 1.0))
        except Exception:  # noqa: BLE001 - a health check reports, it never raises
            return False

    async def close(self) -> None:
        with suppress(Exception):
            await self.redis.aclose()

    # --- the pieces setup_dispatcher uses --------------------------------------------------------

    def key_builder(self) -> OpaqueKeyBuilder:
        return OpaqueKeyBuilder(self)

    def storage(self) -> SharedStorage:
        return SharedStorage(self)

    def isolation(self) -> SharedEventIsolation:
        return SharedEventIsolation(self)

    def recent_risk(self) -> SharedRecentRisk:
        return SharedRecentRisk(self)

    def sent_messages(self) -> SharedSentMessages:
        return SharedSentMessages(self)


class OpaqueKeyBuilder(KeyBuilder):
    """`<prefix>:fsm:<part>:<keyed hash of bot, chat, user, thread, business connection, destiny>`."""

    def __init__(self, state: SharedState) -> None:
        self.state = state

    def build(self, key: StorageKey, part: Literal["data", "state", "lock"] | None = None) -> str:
        return self.state.key(
            "fsm",
            part or "key",
            self.state.opaque(key.bot_id, key.chat_id, key.user_id, key.thread_id, key.business_connection_id, key.destiny),
        )


class SharedStorage(RedisStorage):
    """aiogram's RedisStorage with keyed-hash keys, a TTL, and reads that never fail an update."""

    def __init__(self, state: SharedState) -> None:
        super().__init__(state.redis, key_builder=state.key_builder(), state_ttl=FSM_TTL, data_ttl=FSM_TTL)
        self.state = state

    async def get_state(self, key: StorageKey) -> str | None:
        try:
            return await super().get_state(key)
        except self.state.errors as error:
            self.state.throttled.error("fsm read", error)
            return None

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        try:
            return await super().get_data(key)
        except self.state.errors as error:
            self.state.throttled.error("fsm read", error)
            return {}

    async def close(self) -> None:
        return None  # the SharedState owns the client


class SharedEventIsolation(RedisEventIsolation):
    """One chat, one replica, in order: a local FIFO lock, then a renewed Redis lock."""

    def __init__(self, state: SharedState, *, ttl: float = LOCK_TTL_S, wait: float = LOCK_WAIT_S) -> None:
        super().__init__(state.redis, key_builder=state.key_builder(), lock_kwargs={"timeout": ttl})
        self.state = state
        self.ttl = ttl
        self.wait = wait
        self.local = ChatEventIsolation()
        self.waited_out = 0  # locks given up on after `wait` seconds (the update went ahead anyway)

    @property
    def active_chats(self) -> int:
        return self.local.active_chats

    @asynccontextmanager
    async def lock(self, key: StorageKey) -> AsyncGenerator[None, None]:
        from redis.asyncio.lock import Lock

        async with self.local.lock(key):
            lock = Lock(
                self.redis,
                self.key_builder.build(key, "lock"),
                timeout=self.ttl,
                sleep=LOCK_POLL_S,
                blocking_timeout=self.wait,
                thread_local=False,
                raise_on_release_error=False,
            )
            try:
                acquired = await lock.acquire()
            except self.state.errors as error:
                self.state.throttled.error("chat lock", error)
                acquired = False
            else:
                if not acquired:
                    self.waited_out += 1
                    log.warning("chat lock still held after %.0f s elsewhere; handling the update anyway", self.wait)
            renewal = Renewal(lambda: lock.reacquire(), self.ttl / 3, self.state, "chat lock renewal") if acquired else None
            try:
                yield
            finally:
                if renewal is not None:
                    await renewal.stop()
                    try:
                        await lock.release()
                    except Exception as error:  # noqa: BLE001 - it lapses on its own
                        self.state.throttled.error("chat unlock", error)

    async def close(self) -> None:
        await self.local.close()


@dataclass
class UpdateGate:
    """Claims, leases and `done` marks of update ids in Redis."""

    state: SharedState
    lease: float = CLAIM_LEASE_S
    wait: float = CLAIM_WAIT_S
    done_ttl: float = DONE_TTL_S
    poll: float = CLAIM_POLL_S

    def _key(self, update_id: int) -> str:
        return self.state.key("update", str(update_id))

    async def claim(self, update_id: int) -> str | None:
        """A claim token when this replica should handle the update; None when it was handled already.

        Waits while another replica holds a live claim; takes the update over when that claim lapses."""
        redis = self.state.redis
        key = self._key(update_id)
        token = f"claim:{self.state.replica}:{secrets.token_hex(4)}"
        deadline = time.monotonic() + self.wait
        while True:
            if await redis.set(key, token, nx=True, px=int(self.lease * 1000)):
                return token
            value = await redis.get(key)
            if value == "done":
                return None
            if value is None:
                continue  # the other claim lapsed just now: try again
            if time.monotonic() >= deadline:
                raise UpdateBusy(update_id)
            await asyncio.sleep(self.poll)

    def keep(self, update_id: int, token: str) -> Renewal:
        """Renew the claim while the update is being handled (until `stop()`)."""
        return Renewal(
            lambda: self.state.redis.eval(_RENEW, 1, self._key(update_id), token, int(self.lease * 1000)),
            self.lease / 3, self.state, "update lease",
        )

    async def finish(self, update_id: int) -> None:
        await self.state.redis.set(self._key(update_id), "done", px=int(self.done_ttl * 1000))

    async def abandon(self, update_id: int, token: str) -> None:
        """Drop our claim (the update was not handled), so that a redelivery is handled at once."""
        await self.state.redis.eval(_ABANDON, 1, self._key(update_id), token)


class SharedDedupMiddleware(DedupMiddleware):
    """DedupMiddleware across replicas; this process's LRU only while Redis cannot be reached."""

    def __init__(self, metrics: Metrics, gate: UpdateGate) -> None:
        super().__init__(metrics)
        self.gate = gate

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        if not isinstance(event, Update):
            return await handler(event, data)
        update_id = event.update_id
        try:
            token = await self.gate.claim(update_id)
        except UpdateBusy:
            log.warning("update busy elsewhere update_id=%s: asking for a redelivery", update_id)
            raise
        except self.gate.state.errors as error:
            self.gate.state.throttled.error("update dedup", error)
            return await super().__call__(handler, event, data)
        if token is None:
            self.metrics.duplicates += 1
            log.info("update skipped update_id=%s reason=duplicate", update_id)
            return UNHANDLED
        self.first_time(update_id)  # so the local LRU knows it too, should Redis go away
        renewal = self.gate.keep(update_id, token)
        try:
            result = await handler(event, data)
        except BaseException:
            await renewal.stop()
            with suppress(Exception):
                await asyncio.shield(self.gate.abandon(update_id, token))
            raise
        await renewal.stop()
        try:
            await self.gate.finish(update_id)
        except self.gate.state.errors as error:
            self.gate.state.throttled.error("update done", error)
        return result


class SharedFloodControlMiddleware(FloodControlMiddleware):
    """FloodControlMiddleware whose buckets live in Redis (wall-clock time: replicas share them)."""

    def __init__(
        self,
        holder: ContentHolder,
        metrics: Metrics,
        state: SharedState,
        *,
        capacity: float = FLOOD_CAPACITY,
        refill_per_s: float = FLOOD_REFILL_PER_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(holder, metrics, capacity=capacity, refill_per_s=refill_per_s, clock=clock)
        self.state = state
        full_after = capacity / refill_per_s if refill_per_s > 0 else 3600.0
        self._ttl_ms = int(math.ceil(full_after + 60.0) * 1000)

    async def allow(self, user_id: int) -> bool:
        key = self.state.key("flood", self.state.opaque("telegram", user_id))
        try:
            allowed = await self.state.redis.eval(
                _TAKE, 1, key, repr(self.capacity), repr(self.refill_per_s), repr(self.clock()), self._ttl_ms
            )
        except self.state.errors as error:
            self.state.throttled.error("flood control", error)
            return self.take(user_id)
        return bool(int(allowed))


MEMORY_TTL_S = int(DELETE_WINDOW_S) + 600  # what an edit or /forget can still concern
SENT_PER_CHAT = 50


class SharedRecentRisk(RecentRisk):
    """message_id -> risk level of a chat's recent messages, in a Redis hash that lapses after 48 hours."""

    def __init__(self, state: SharedState) -> None:
        super().__init__()
        self.state = state

    def _key(self, chat_id: int) -> str:
        return self.state.key("risk", self.state.opaque("chat", chat_id))

    async def note(self, chat_id: int, message_id: int, risk: RiskLevel) -> None:
        self.remember(chat_id, message_id, risk)
        try:
            async with self.state.redis.pipeline(transaction=True) as pipe:
                pipe.hset(self._key(chat_id), str(message_id), int(risk))
                pipe.expire(self._key(chat_id), MEMORY_TTL_S)
                await pipe.execute()
        except self.state.errors as error:
            self.state.throttled.error("recent risk", error)

    async def recall(self, chat_id: int, message_id: int) -> RiskLevel | None:
        try:
            value = await self.state.redis.hget(self._key(chat_id), str(message_id))
        except self.state.errors as error:
            self.state.throttled.error("recent risk", error)
            return self.risk_of(chat_id, message_id)
        return RiskLevel(int(value)) if value is not None else None

    async def drop(self, chat_id: int) -> None:
        self.forget(chat_id)
        try:
            await self.state.redis.delete(self._key(chat_id))
        except self.state.errors as error:
            self.state.throttled.error("recent risk", error)


class SharedSentMessages(SentMessages):
    """The bot's recent message ids per chat ("id:unix time"), in a Redis list that lapses after 48 hours."""

    def __init__(self, state: SharedState) -> None:
        super().__init__(per_chat=SENT_PER_CHAT)
        self.state = state

    def _key(self, chat_id: int) -> str:
        return self.state.key("sent", self.state.opaque("chat", chat_id))

    async def record(self, chat_id: int, message_id: int) -> None:
        self.add(chat_id, message_id)
        try:
            async with self.state.redis.pipeline(transaction=True) as pipe:
                pipe.rpush(self._key(chat_id), f"{message_id}:{self._clock():.0f}")
                pipe.ltrim(self._key(chat_id), -SENT_PER_CHAT, -1)
                pipe.expire(self._key(chat_id), MEMORY_TTL_S)
                await pipe.execute()
        except self.state.errors as error:
            self.state.throttled.error("sent messages", error)

    async def take(self, chat_id: int) -> list[int]:
        local = self.take_deletable(chat_id)
        try:
            async with self.state.redis.pipeline(transaction=True) as pipe:
                pipe.lrange(self._key(chat_id), 0, -1)
                pipe.delete(self._key(chat_id))
                entries, _ = await pipe.execute()
        except self.state.errors as error:
            self.state.throttled.error("sent messages", error)
            return local
        now = self._clock()
        ids: set[int] = set(local)
        for entry in entries:
            message_id, _, at = str(entry).partition(":")
            if message_id.isdigit() and now - float(at or 0) < DELETE_WINDOW_S:
                ids.add(int(message_id))
        return sorted(ids)


class ContentSync:
    """Publish this replica's content digest; reload when another replica has announced a different one.

    The newest digest is one Redis key that every replica reads each `tick` (a GET: no pub/sub
    connection to lose, and cancelling the loop is always clean)."""

    def __init__(self, state: SharedState, holder: ContentHolder, *, tick: float = CONTENT_TICK_S) -> None:
        self.state = state
        self.holder = holder
        self.tick = tick
        self.key = state.key("content", "digest")
        self.newest: str | None = None  # the digest last announced by any replica
        self.reloads = 0  # reloads this replica did because another announced new content
        self._published: str | None = None
        self._tried: tuple[str, Any] | None = None
        self._closing = asyncio.Event()

    def report(self) -> Mapping[str, Any]:
        return {"content_hash_newest": self.newest}

    def close(self) -> None:
        """Ask `run` to end. An event as well as a cancel: on Python 3.11, a cancel that lands while a
        redis-py call times out can be swallowed, and the loop must still end."""
        self._closing.set()

    async def run(self) -> None:
        """Until `close()` (or cancelled); Redis trouble is logged and retried."""
        while not self._closing.is_set():
            try:
                await self._local_tick()
                value = await self.state.redis.get(self.key)
                if value:
                    await self._announced(str(value))
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - Redis away: keep serving, try again
                self.state.throttled.error("content sync", error)
                self._published = None  # announce again once Redis is back
            with suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self.tick)

    async def _local_tick(self) -> None:
        """This replica's own file check (at most once a second), then announce a changed digest."""
        if self.holder.check_due():
            try:
                await asyncio.to_thread(self.holder.maybe_reload)
            except Exception as error:  # noqa: BLE001
                log.error("content check failed error=%s", type(error).__name__)
        await self._publish_if_changed()

    async def _publish_if_changed(self) -> None:
        digest = self.holder.current.content.digest
        if digest == self._published:
            return
        await self.state.redis.set(self.key, digest)
        self._published = digest
        self.newest = digest
        log.info("content digest announced digest=%s", digest)

    async def _announced(self, digest: str) -> None:
        self.newest = digest
        own = self.holder.current.content.digest
        if digest == own:
            return
        if own != self._published:
            # This replica reloaded between its publish and this read: its own, newer digest is the news.
            await self._publish_if_changed()
            return
        attempt = (digest, content_fingerprint(self.holder.directory))
        if attempt == self._tried:
            return  # already reloaded for this announcement with these very files
        self._tried = attempt
        log.info("content announced digest=%s own=%s: reloading", digest, own)
        self.reloads += 1
        problems = await asyncio.to_thread(self.holder.reload)
        if not problems:
            await self._publish_if_changed()
