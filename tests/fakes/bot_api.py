"""A small, strict fake of the Telegram Bot API for end-to-end tests.

It is an ``aiohttp.web`` server on 127.0.0.1 (random free port) that a real aiogram
``Bot`` talks to through ``AiohttpSession(api=TelegramAPIServer.from_base(base_url))``.
Requests are ``/bot<TOKEN>/<method>`` (GET or POST; query string, urlencoded form,
multipart form or JSON body; method names case-insensitive), answers are Telegram's
``{"ok": true, "result": ...}`` / ``{"ok": false, "error_code": N, "description": ...,
"parameters": {...}}`` with the HTTP status equal to ``error_code``.

Telegram's rules that it enforces (so a test can fail):

* text 1–4096 UTF-16 code units after entity parsing and whitespace trimming
  ("message text is empty" / "message is too long"); captions up to 1024;
* ``parse_mode`` HTML / MarkdownV2 / Markdown parsed with Telegram's errors (unescaped
  reserved characters, unknown tags, unclosed entities) — see ``markup.py``;
* explicit ``entities``: known type, offset/length inside the text in UTF-16 units;
* inline keyboards: exactly one action per button, ``callback_data`` 1–64 bytes
  (BUTTON_DATA_INVALID), URL buttons only ``http(s)://`` with a host or ``tg://``
  (BUTTON_URL_INVALID), at most 100 buttons, copy_text 1–256 characters;
* chats the server never saw (no user message, no ``add_chat``) -> "chat not found";
  a blocked user -> 403; wrong token -> 401; unknown method -> 404;
* editMessage*: message must exist and be the bot's, "message is not modified" when
  nothing changes, and a missing ``reply_markup`` removes the inline keyboard (as Telegram
  does); deleteMessage honours the 48-hour limit (use ``advance_time``);
* getUpdates long polling with offset/limit/timeout/allowed_updates, 409 while a webhook
  is set, and 409 "terminated by other getUpdates request" for a concurrent poll.

Approximations: some error strings for rarely hit cases (button text, copy_text, topic
names, command validation, entity bounds) are plausible rather than verified against
Telegram; entity bounds are rejected strictly where Telegram may silently clip; setWebhook
accepts any http(s) URL (Telegram requires HTTPS on ports 443/80/88/8443) unless
``strict_webhook=True``; message ids are per chat; there is no flood control unless
injected with ``fail_next``.

All control methods must be called from the event loop the server runs on.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from .markup import (
    EntityError,
    command_entities,
    parse_text,
    strip_text,
    utf16_len,
    validate_entities,
)

__all__ = ["ApiError", "FakeBotAPI", "WebhookReply", "post_webhook_update"]

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
CALLBACK_DATA_LIMIT = 64
MAX_BUTTONS = 100
DELETE_WINDOW = 48 * 3600

NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup "
    "are exactly the same as a current content and reply markup of the message"
)
QUERY_INVALID = "Bad Request: query is too old and response timeout expired or query ID is invalid"
BLOCKED = "Forbidden: bot was blocked by the user"

CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
BUTTON_ACTIONS = (
    "url",
    "callback_data",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)
# Telegram's default when allowed_updates is empty: everything except these.
NOT_DEFAULT_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
JSON_FIELDS = frozenset(
    {
        "reply_markup",
        "entities",
        "caption_entities",
        "commands",
        "scope",
        "allowed_updates",
        "reply_parameters",
        "link_preview_options",
        "message_ids",
    }
)
SECRET_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{1,256}")
COMMAND_RE = re.compile(r"[a-z0-9_]{1,32}")


class ApiError(Exception):
    """An error answer: HTTP status ``code`` and Telegram's ``description``."""

    def __init__(self, code: int, description: str, parameters: dict[str, Any] | None = None) -> None:
        super().__init__(f"{code} {description}")
        self.code = code
        self.description = description
        self.parameters = parameters

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error_code": self.code, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def bad_request(message: str) -> ApiError:
    return ApiError(400, f"Bad Request: {message}")


class Params:
    """Typed access to Bot API parameters from a form (all strings) or a JSON body."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def __contains__(self, key: str) -> bool:
        return self.data.get(key) not in (None, "")

    def str(self, key: str, default: str | None = None) -> str | None:
        value = self.data.get(key)
        if value is None:
            return default
        return value if isinstance(value, str) else json.dumps(value)

    def int(self, key: str, default: int | None = None) -> int | None:
        value = self.data.get(key)
        if value in (None, ""):
            return default
        if isinstance(value, bool):
            raise bad_request(f"invalid {key} specified")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise bad_request(f"invalid {key} specified") from None

    def bool(self, key: str) -> bool:
        value = self.data.get(key)
        if isinstance(value, str):
            return value.lower() in ("true", "1")
        return bool(value)

    def json(self, key: str, error: str) -> Any:
        value = self.data.get(key)
        if value is None or value == "":
            return None
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                raise bad_request(error) from None
        return value


@dataclass
class WebhookReply:
    """What a webhook endpoint answered; ``method``/``params`` when it replied with a method call."""

    status: int
    body: bytes
    method: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] | None = None  # filled by FakeBotAPI.post_webhook_update


async def post_webhook_update(
    url: str, update: dict[str, Any], secret: str | None = None, *, timeout: float = 10.0
) -> WebhookReply:
    """POST ``update`` to a webhook endpoint as Telegram does (JSON body, secret header)."""
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        async with session.post(url, data=json.dumps(update), headers=headers) as resp:
            body = await resp.read()
            reply = WebhookReply(status=resp.status, body=body)
            if resp.status == 200 and body:
                reply.method, reply.params = _parse_webhook_body(
                    resp.content_type, resp.headers.get("Content-Type", ""), body
                )
            return reply


def _parse_webhook_body(ctype: str, full_ctype: str, body: bytes) -> tuple[str | None, dict[str, Any]]:
    """A webhook answer may carry one Bot API call: JSON or multipart/form-data with ``method``."""
    params: dict[str, Any] = {}
    if ctype == "application/json":
        try:
            data = json.loads(body)
        except ValueError:
            return None, {}
        if isinstance(data, dict) and isinstance(data.get("method"), str):
            params = {k: v for k, v in data.items() if k != "method"}
            return data["method"], params
        return None, {}
    if ctype == "multipart/form-data":
        m = re.search(r'boundary="?([^";]+)"?', full_ctype)
        if not m:
            return None, {}
        boundary = m.group(1).encode()
        for part in body.split(b"--" + boundary):
            head, sep, value = part.partition(b"\r\n\r\n")
            if not sep:
                continue
            name = re.search(rb'name="([^"]+)"', head)
            if name:
                params[name.group(1).decode()] = value.rstrip(b"\r\n").decode("utf-8", "replace")
        method = params.pop("method", None)
        return method, params
    return None, {}


class FakeBotAPI:
    """The fake Bot API server. ``await start()``, point a Bot at ``base_url``, ``await stop()``."""

    def __init__(
        self,
        token: str | None = None,
        *,
        bot_username: str = "hubbot_test_bot",
        bot_name: str = "Hubbot (test)",
        strict_webhook: bool = False,
    ) -> None:
        bot_id = 7_000_000_000 + secrets.randbelow(1_000_000)
        self.token = token or f"{bot_id}:{secrets.token_urlsafe(26)[:35]}"
        self.bot_id = int(self.token.split(":", 1)[0])
        self.bot_user = {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": bot_name,
            "username": bot_username,
        }
        self.strict_webhook = strict_webhook
        self.host = "127.0.0.1"
        self.port: int | None = None
        self._runner: web.AppRunner | None = None

        # records, readable by tests
        self.sent: list[dict[str, Any]] = []
        self.calls: list[dict[str, Any]] = []
        self.deleted: list[tuple[int, int]] = []
        self.actions: list[dict[str, Any]] = []
        self.callback_answers: list[dict[str, Any]] = []
        self.topics: list[dict[str, Any]] = []
        self.commands: dict[tuple[str, str], list[dict[str, str]]] = {}
        self.descriptions: dict[tuple[str, str], str] = {}

        # Telegram-side state
        self.chats: dict[int, dict[str, Any]] = {}
        self.users: dict[int, dict[str, Any]] = {}
        self.messages: dict[tuple[int, int], dict[str, Any]] = {}
        self._meta: dict[tuple[int, int], dict[str, Any]] = {}  # from_bot, deleted, kind
        self._next_message_id: dict[int, int] = {}
        self._forum_topics: dict[int, set[int]] = {}
        self.blocked: set[int] = set()
        self._callbacks: dict[str, dict[str, Any]] = {}

        self.updates: list[dict[str, Any]] = []  # unconfirmed queue
        self._next_update_id = 100_000 + secrets.randbelow(900_000)
        self._last_confirmed = 0
        self.allowed_updates: list[str] = []
        self.webhook: dict[str, Any] | None = None
        self._poll_generation = 0
        self._wake = asyncio.Event()
        self._sent_event = asyncio.Event()
        self._stopping = asyncio.Event()

        self._failures: list[dict[str, Any]] = []
        self._stalls: list[dict[str, Any]] = []
        self._time_offset = 0.0

        self._handlers: dict[str, Callable[[Params], Awaitable[Any]]] = {
            name.lower(): getattr(self, f"_m_{name}")
            for name in (
                "getMe",
                "getUpdates",
                "deleteWebhook",
                "setWebhook",
                "getWebhookInfo",
                "setMyCommands",
                "getMyCommands",
                "deleteMyCommands",
                "setMyDescription",
                "setMyShortDescription",
                "sendMessage",
                "editMessageText",
                "editMessageReplyMarkup",
                "answerCallbackQuery",
                "deleteMessage",
                "deleteMessages",
                "sendChatAction",
                "copyMessage",
                "forwardMessage",
                "createForumTopic",
                "close",
                "logOut",
            )
        }

    # ------------------------------------------------------------------ lifecycle

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError("FakeBotAPI is not started")
        return f"http://{self.host}:{self.port}"

    async def start(self) -> "FakeBotAPI":
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((self.host, 0))
        self.port = sock.getsockname()[1]
        site = web.SockSite(self._runner, sock)
        await site.start()
        return self

    async def stop(self) -> None:
        self._stopping.set()
        self._notify()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> "FakeBotAPI":
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def make_bot(self, **kwargs: Any) -> Any:
        """A real aiogram ``Bot`` whose session talks to this server (close its session after)."""
        from aiogram import Bot
        from aiogram.client.session.aiohttp import AiohttpSession
        from aiogram.client.telegram import TelegramAPIServer

        session = AiohttpSession(api=TelegramAPIServer.from_base(self.base_url))
        return Bot(token=self.token, session=session, **kwargs)

    # ------------------------------------------------------------------ clock

    def now(self) -> float:
        return time.time() + self._time_offset

    def advance_time(self, seconds: float) -> None:
        """Move the server's clock forward (message ages, e.g. the 48-hour delete limit)."""
        self._time_offset += seconds

    # ------------------------------------------------------------------ test controls: chats and updates

    def add_chat(
        self,
        chat_id: int,
        chat_type: str = "supergroup",
        *,
        title: str | None = None,
        is_forum: bool = False,
        username: str | None = None,
        first_name: str = "Test",
    ) -> dict[str, Any]:
        """Make a chat known to the server without a user message (e.g. a staff group)."""
        if chat_type == "private":
            chat: dict[str, Any] = {"id": chat_id, "type": "private", "first_name": first_name}
        else:
            chat = {"id": chat_id, "type": chat_type, "title": title or f"Test {chat_type} {chat_id}"}
            if is_forum:
                chat["is_forum"] = True
        if username:
            chat["username"] = username
        self.chats[chat_id] = chat
        self._next_message_id.setdefault(chat_id, 1)
        return chat

    def make_message_update(
        self,
        chat_id: int,
        text: str | None = None,
        *,
        user_id: int | None = None,
        chat_type: str = "private",
        message_id: int | None = None,
        caption: str | None = None,
        sticker: bool = False,
        photo: bool = False,
        voice: bool = False,
        edited: bool = False,
        language_code: str | None = "en",
        message_thread_id: int | None = None,
    ) -> dict[str, Any]:
        """Build (and register on the server) a user's message update without queueing it.

        ``message_thread_id`` puts the message in a forum topic (the chat must be a forum with that topic)."""
        if user_id is None:
            user_id = chat_id if chat_type == "private" else 424242
        user = {"id": user_id, "is_bot": False, "first_name": "Test"}
        if language_code:
            user["language_code"] = language_code
        self.users[user_id] = user
        chat = self.chats.get(chat_id)
        if chat is None or chat["type"] != chat_type:
            chat = self.add_chat(chat_id, chat_type, first_name="Test")
        if message_id is None:
            if edited:
                own = [mid for (cid, mid), meta in self._meta.items() if cid == chat_id and not meta["from_bot"]]
                if not own:
                    raise ValueError("edited=True needs message_id or an earlier user message in that chat")
                message_id = max(own)
            else:
                message_id = self._new_message_id(chat_id)
        else:
            self._next_message_id[chat_id] = max(self._next_message_id.get(chat_id, 1), message_id + 1)
        now = int(self.now())
        msg: dict[str, Any] = {"message_id": message_id, "from": user, "chat": chat, "date": now}
        if message_thread_id is not None:
            if not chat.get("is_forum") or message_thread_id not in self._forum_topics.get(chat_id, set()):
                raise ValueError("message_thread_id needs a forum chat with that topic")
            msg["message_thread_id"] = message_thread_id
            msg["is_topic_message"] = True
        kind = "text"
        if sticker:
            kind = "sticker"
            msg["sticker"] = {
                "file_id": "CAACAg" + secrets.token_urlsafe(12),
                "file_unique_id": secrets.token_urlsafe(8),
                "type": "regular",
                "width": 512,
                "height": 512,
                "is_animated": False,
                "is_video": False,
                "emoji": "🙂",
            }
        elif photo or voice:
            if photo:
                kind = "photo"
                msg["photo"] = [
                    {"file_id": "AgAC" + secrets.token_urlsafe(12), "file_unique_id": secrets.token_urlsafe(8),
                     "width": w, "height": w, "file_size": w * 40}
                    for w in (90, 320, 800)
                ]
            else:
                kind = "voice"
                msg["voice"] = {
                    "file_id": "AwAC" + secrets.token_urlsafe(12),
                    "file_unique_id": secrets.token_urlsafe(8),
                    "duration": 3,
                    "mime_type": "audio/ogg",
                    "file_size": 12000,
                }
            body = caption if caption is not None else text
            if body:
                msg["caption"] = body
                ents = command_entities(body)
                if ents:
                    msg["caption_entities"] = ents
        else:
            msg["text"] = text if text is not None else ""
            ents = command_entities(msg["text"])
            if ents:
                msg["entities"] = ents
        if edited:
            msg["edit_date"] = now
        self.messages[(chat_id, message_id)] = msg
        self._meta[(chat_id, message_id)] = {"from_bot": False, "deleted": False, "kind": kind}
        update = {"update_id": self._take_update_id(), "edited_message" if edited else "message": msg}
        return update

    def push_message(self, chat_id: int, text: str | None = None, **kwargs: Any) -> dict[str, Any]:
        """Queue a user's message (see ``make_message_update`` for the keyword arguments)."""
        update = self.make_message_update(chat_id, text, **kwargs)
        self._enqueue(update)
        return update

    def make_callback_update(
        self, chat_id: int, data: str, message_id: int, user_id: int | None = None
    ) -> dict[str, Any]:
        """Build (and register) a button press on ``message_id`` without queueing it."""
        chat = self.chats.get(chat_id)
        if chat is None:
            chat = self.add_chat(chat_id, "private")
        if user_id is None:
            user_id = chat_id if chat["type"] == "private" else 424242
        user = self.users.setdefault(
            user_id, {"id": user_id, "is_bot": False, "first_name": "Test", "language_code": "en"}
        )
        msg = self.messages.get((chat_id, message_id))
        if msg is None or self._meta[(chat_id, message_id)]["deleted"]:
            message: dict[str, Any] = {"chat": chat, "message_id": message_id, "date": 0}  # InaccessibleMessage
        else:
            message = msg
        query_id = str(secrets.randbits(63))
        query = {
            "id": query_id,
            "from": user,
            "message": message,
            "chat_instance": str(abs(hash((chat_id, self.bot_id))) % 10**18),
            "data": data,
        }
        self._callbacks[query_id] = {"answered": False, "query": query}
        return {"update_id": self._take_update_id(), "callback_query": query}

    def push_callback(self, chat_id: int, data: str, message_id: int, user_id: int | None = None) -> dict[str, Any]:
        """Queue a callback query (a tap on an inline button of ``message_id``)."""
        update = self.make_callback_update(chat_id, data, message_id, user_id)
        self._enqueue(update)
        return update

    def push_raw(self, update: dict[str, Any]) -> dict[str, Any]:
        """Queue any dict as an update (malformed ones too); adds ``update_id`` if missing."""
        if "update_id" not in update:
            update = {"update_id": self._take_update_id(), **update}
        else:
            self._next_update_id = max(self._next_update_id, int(update["update_id"]) + 1)
        self._enqueue(update)
        return update

    def block_user(self, chat_id: int, *, push_update: bool = False) -> None:
        """Every call aimed at ``chat_id`` now fails with 403 "bot was blocked by the user"."""
        self.blocked.add(chat_id)
        if push_update:
            chat = self.chats.get(chat_id) or self.add_chat(chat_id, "private")
            user = self.users.get(chat_id, {"id": chat_id, "is_bot": False, "first_name": "Test"})
            self._enqueue(
                {
                    "update_id": self._take_update_id(),
                    "my_chat_member": {
                        "chat": chat,
                        "from": user,
                        "date": int(self.now()),
                        "old_chat_member": {"status": "member", "user": self.bot_user},
                        "new_chat_member": {"status": "kicked", "user": self.bot_user, "until_date": 0},
                    },
                }
            )

    def unblock_user(self, chat_id: int) -> None:
        self.blocked.discard(chat_id)

    @property
    def pending_updates(self) -> int:
        """Updates not yet confirmed by a getUpdates offset."""
        return len(self.updates)

    async def wait_until_confirmed(self, timeout: float = 5.0) -> None:
        """Wait until the bot has confirmed every queued update (its next getUpdates offset)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self.updates:
            if asyncio.get_running_loop().time() >= deadline:
                raise AssertionError(f"{len(self.updates)} update(s) still unconfirmed after {timeout}s")
            await self._wait_wake(deadline)

    # ------------------------------------------------------------------ test controls: results

    def sent_to(self, chat_id: int) -> list[dict[str, Any]]:
        return [rec for rec in self.sent if rec["chat_id"] == chat_id]

    def calls_to(self, method: str) -> list[dict[str, Any]]:
        method = method.lower()
        return [call for call in self.calls if call["method"].lower() == method]

    async def wait_for_sent(
        self, count: int, timeout: float = 5.0, *, chat_id: int | None = None
    ) -> list[dict[str, Any]]:
        """Wait until at least ``count`` sends/edits/copies were recorded (optionally to one chat)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout

        def current() -> list[dict[str, Any]]:
            return self.sent if chat_id is None else self.sent_to(chat_id)

        while len(current()) < count:
            remaining = deadline - loop.time()
            if remaining <= 0:
                got = [(r["method"], r["chat_id"], (r["text"] or "")[:60]) for r in current()]
                raise AssertionError(f"expected {count} sent message(s), got {len(got)}: {got}")
            event = self._sent_event
            try:
                await asyncio.wait_for(event.wait(), remaining)
            except asyncio.TimeoutError:
                pass
        return current()

    def get_commands(self, scope: dict[str, Any] | None = None, language_code: str = "") -> list[dict[str, str]]:
        return self.commands.get((_scope_key(scope), language_code), [])

    # ------------------------------------------------------------------ test controls: faults

    def fail_next(
        self,
        method: str,
        error_code: int = 429,
        description: str | None = None,
        retry_after: int | None = None,
        times: int = 1,
    ) -> None:
        """The next ``times`` calls of ``method`` ("*" for any) fail with this error."""
        if description is None:
            description = {
                429: f"Too Many Requests: retry after {retry_after or 1}",
                403: BLOCKED,
                400: "Bad Request: message is too long",
                500: "Internal Server Error",
                502: "Bad Gateway",
            }.get(error_code, "Error")
        if error_code == 429 and retry_after is None:
            retry_after = 1
        params = {"retry_after": retry_after} if retry_after is not None else None
        error = ApiError(error_code, description, params)
        self._failures.append({"method": method.lower(), "error": error, "times": times})

    def stall_next(self, method: str, seconds: float, times: int = 1) -> None:
        """Delay the response to the next ``times`` calls of ``method`` ("*" for any)."""
        self._stalls.append({"method": method.lower(), "seconds": seconds, "times": times})

    def clear_faults(self) -> None:
        self._failures.clear()
        self._stalls.clear()

    # ------------------------------------------------------------------ webhooks

    async def post_webhook_update(
        self, url: str, update: dict[str, Any], secret: str | None = None, *, timeout: float = 10.0
    ) -> WebhookReply:
        """POST an update to a webhook; a method call in the answer is executed here, as Telegram does."""
        reply = await post_webhook_update(url, update, secret, timeout=timeout)
        if reply.method:
            status, body = await self.call(reply.method, reply.params)
            reply.result = body
        return reply

    async def deliver_webhook(self) -> list[WebhookReply]:
        """Deliver queued updates to the webhook set with setWebhook; 2xx answers confirm them."""
        if not self.webhook:
            raise RuntimeError("no webhook is set")
        replies = []
        for update in list(self.updates):
            reply = await self.post_webhook_update(self.webhook["url"], update, self.webhook.get("secret_token"))
            replies.append(reply)
            if 200 <= reply.status < 300:
                self.updates.remove(update)
        return replies

    # ------------------------------------------------------------------ HTTP

    async def _handle(self, request: web.Request) -> web.Response:
        m = re.fullmatch(r"/bot([^/]*)/([^/]*)/?", request.path)
        if not m:
            return self._json(ApiError(404, "Not Found").body(), 404)
        token, method = m.groups()
        if token != self.token:
            return self._json(ApiError(401, "Unauthorized").body(), 401)
        try:
            data = await self._read_params(request)
        except ApiError as e:
            return self._json(e.body(), e.code)
        status, body = await self.call(method, data)
        return self._json(body, status)

    @staticmethod
    def _json(body: dict[str, Any], status: int) -> web.Response:
        return web.Response(
            text=json.dumps(body, ensure_ascii=False), status=status, content_type="application/json"
        )

    @staticmethod
    async def _read_params(request: web.Request) -> dict[str, Any]:
        data: dict[str, Any] = dict(request.query)
        if request.method != "POST" or not request.can_read_body:
            return data
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except ValueError:
                raise bad_request("can't parse JSON object") from None
            if not isinstance(body, dict):
                raise bad_request("can't parse JSON object")
            data.update(body)
        elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.post()
            for key, value in form.items():
                data[key] = value if isinstance(value, str) else getattr(value, "filename", "file")
        return data

    async def call(self, method: str, data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Run one Bot API method as the HTTP endpoint would; returns (status, body)."""
        name = method.lower()
        handler = self._handlers.get(name)
        record = {"method": method, "params": data, "time": self.now(), "status": 200, "description": None}
        self.calls.append(record)
        if handler is None:
            record.update(status=404, description="Not Found")
            return 404, ApiError(404, "Not Found").body()
        try:
            await self._apply_stall(name)
            self._apply_failure(name)
            result = await handler(Params(data))
        except ApiError as e:
            record.update(status=e.code, description=e.description)
            return e.code, e.body()
        body: dict[str, Any] = {"ok": True, "result": result}
        if isinstance(result, _Described):
            body = {"ok": True, "result": result.value, "description": result.description}
        return 200, body

    async def _apply_stall(self, name: str) -> None:
        for stall in self._stalls:
            if stall["method"] in (name, "*"):
                stall["times"] -= 1
                if stall["times"] <= 0:
                    self._stalls.remove(stall)
                try:
                    await asyncio.wait_for(self._stopping.wait(), stall["seconds"])
                except asyncio.TimeoutError:
                    pass
                return

    def _apply_failure(self, name: str) -> None:
        for failure in self._failures:
            if failure["method"] in (name, "*"):
                failure["times"] -= 1
                if failure["times"] <= 0:
                    self._failures.remove(failure)
                raise failure["error"]

    # ------------------------------------------------------------------ internals

    def _take_update_id(self) -> int:
        update_id = self._next_update_id
        self._next_update_id += 1
        return update_id

    def _new_message_id(self, chat_id: int) -> int:
        message_id = self._next_message_id.get(chat_id, 1)
        self._next_message_id[chat_id] = message_id + 1
        return message_id

    def _enqueue(self, update: dict[str, Any]) -> None:
        self.updates.append(update)
        self._notify()

    def _notify(self) -> None:
        self._wake.set()
        self._wake = asyncio.Event()

    async def _wait_wake(self, deadline: float) -> None:
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            return
        try:
            await asyncio.wait_for(self._wake.wait(), min(remaining, 0.05))
        except asyncio.TimeoutError:
            pass

    def _record(self, method: str, msg: dict[str, Any], params: Params, **extra: Any) -> dict[str, Any]:
        rec = {
            "method": method,
            "chat_id": msg["chat"]["id"],
            "message_id": msg["message_id"],
            "text": msg.get("text", msg.get("caption")),
            "entities": msg.get("entities", msg.get("caption_entities")),
            "reply_markup": msg.get("reply_markup"),
            "time": self.now(),
            "parse_mode": params.str("parse_mode"),
            "raw_text": params.str("text") if "text" in params else params.str("caption"),
            "message_thread_id": msg.get("message_thread_id"),
            "message": msg,
        }
        if "reply_markup" in params:
            rec["reply_markup"] = params.json("reply_markup", "x")  # what was sent, incl. reply keyboards
        rec.update(extra)
        self.sent.append(rec)
        self._sent_event.set()
        self._sent_event = asyncio.Event()
        return rec

    def _chat(self, params: Params, key: str = "chat_id") -> dict[str, Any]:
        value = params.data.get(key)
        if value in (None, ""):
            raise bad_request(f"{key} is empty")
        chat: dict[str, Any] | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            chat = self.chats.get(value)
        elif isinstance(value, str) and re.fullmatch(r"-?\d+", value):
            chat = self.chats.get(int(value))
        elif isinstance(value, str) and value.startswith("@"):
            chat = next((c for c in self.chats.values() if c.get("username", "").lower() == value[1:].lower()), None)
        if chat is None:
            raise bad_request("chat not found")
        if chat["id"] in self.blocked:
            raise ApiError(403, BLOCKED)
        return chat

    def _formatted(
        self, params: Params, text_key: str, entities_key: str, limit: int, *, required: bool
    ) -> tuple[str, list[dict[str, Any]]]:
        text = params.str(text_key) or ""
        entities_raw = params.json(entities_key, "can't parse entities JSON object")
        parse_mode = params.str("parse_mode") or ""
        try:
            if entities_raw is not None:
                entities = validate_entities(text, entities_raw)
            elif parse_mode:
                try:
                    text, entities = parse_text(text, parse_mode)
                except KeyError:
                    raise bad_request("unsupported parse_mode") from None
            else:
                entities = []
        except EntityError as e:
            raise bad_request(f"can't parse entities: {e}") from None
        text, entities = strip_text(text, entities)
        if required and not text:
            raise bad_request("message text is empty")
        if utf16_len(text) > limit:
            raise bad_request("message is too long" if text_key == "text" else "message caption is too long")
        return text, entities

    def _markup(self, params: Params, *, inline_only: bool) -> dict[str, Any] | None:
        markup = params.json("reply_markup", "can't parse reply keyboard markup JSON object")
        if markup is None:
            return None
        if not isinstance(markup, dict):
            raise bad_request("can't parse reply keyboard markup JSON object")
        if "inline_keyboard" in markup:
            return {"inline_keyboard": _check_inline_keyboard(markup["inline_keyboard"])}
        if inline_only:
            raise bad_request("inline keyboard expected")
        if "keyboard" in markup:
            rows = markup["keyboard"]
            if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
                raise bad_request(
                    'can\'t parse reply keyboard markup JSON object: Field "keyboard" must be of type Array'
                )
            for row in rows:
                for button in row:
                    label = button.get("text") if isinstance(button, dict) else button
                    if not isinstance(label, str) or not label:
                        raise bad_request("BUTTON_TEXT_INVALID")
            return None  # reply keyboards are not part of the returned Message
        if markup.get("remove_keyboard") or markup.get("force_reply"):
            return None
        raise bad_request("can't parse reply keyboard markup JSON object")

    def _message(self, chat: dict[str, Any], params: Params, *, action: str) -> tuple[dict[str, Any], dict[str, Any]]:
        message_id = params.int("message_id")
        if "inline_message_id" in params and message_id is None:
            raise bad_request("MESSAGE_ID_INVALID")
        if message_id is None:
            raise bad_request("message identifier is not specified")
        key = (chat["id"], message_id)
        if key not in self.messages or self._meta[key]["deleted"]:
            raise bad_request(f"message to {action} not found")
        return self.messages[key], self._meta[key]

    def _thread(self, chat: dict[str, Any], params: Params) -> int | None:
        thread_id = params.int("message_thread_id")
        if thread_id is None or not chat.get("is_forum"):
            return None
        if thread_id != 1 and thread_id not in self._forum_topics.get(chat["id"], set()):
            raise bad_request("message thread not found")
        return thread_id

    def _reply_to(self, chat: dict[str, Any], params: Params) -> dict[str, Any] | None:
        reply = params.json("reply_parameters", "can't parse reply parameters JSON object")
        message_id = None
        allow_missing = params.bool("allow_sending_without_reply")
        if isinstance(reply, dict):
            message_id = reply.get("message_id")
            allow_missing = allow_missing or bool(reply.get("allow_sending_without_reply"))
            if reply.get("chat_id") not in (None, chat["id"]):
                return None
        elif "reply_to_message_id" in params:
            message_id = params.int("reply_to_message_id")
        if message_id is None:
            return None
        key = (chat["id"], int(message_id))
        if key not in self.messages or self._meta[key]["deleted"]:
            if allow_missing:
                return None
            raise bad_request("message to be replied not found")
        return self.messages[key]

    def _store_bot_message(self, chat: dict[str, Any], kind: str, **content: Any) -> dict[str, Any]:
        message_id = self._new_message_id(chat["id"])
        msg: dict[str, Any] = {"message_id": message_id, "from": self.bot_user, "chat": chat, "date": int(self.now())}
        msg.update({k: v for k, v in content.items() if v not in (None, [], {})})
        if msg.get("message_thread_id"):
            msg["is_topic_message"] = True
        self.messages[(chat["id"], message_id)] = msg
        self._meta[(chat["id"], message_id)] = {"from_bot": True, "deleted": False, "kind": kind}
        return msg

    # ------------------------------------------------------------------ methods

    async def _m_getMe(self, p: Params) -> Any:
        return {
            **self.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _m_getUpdates(self, p: Params) -> Any:
        if self.webhook:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = p.int("offset", 0) or 0
        limit = min(max(p.int("limit", 100) or 100, 1), 100)
        timeout = max(p.int("timeout", 0) or 0, 0)
        allowed = p.json("allowed_updates", "can't parse allowed_updates JSON object")
        if isinstance(allowed, list):
            self.allowed_updates = [str(a) for a in allowed]
        if offset > 0:
            self.updates = [u for u in self.updates if u["update_id"] >= offset]
        elif offset < 0:
            self.updates = self.updates[offset:]
        self._notify()  # wakes an earlier long poll, which then answers 409
        self._poll_generation += 1
        generation = self._poll_generation
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if generation != self._poll_generation:
                raise ApiError(
                    409,
                    "Conflict: terminated by other getUpdates request; "
                    "make sure that only one bot instance is running",
                )
            batch = [u for u in self.updates if self._allowed(u)][:limit]
            if batch or loop.time() >= deadline or self._stopping.is_set():
                return batch
            remaining = deadline - loop.time()
            wake = self._wake
            try:
                await asyncio.wait_for(wake.wait(), remaining)
            except asyncio.TimeoutError:
                pass

    def _allowed(self, update: dict[str, Any]) -> bool:
        kinds = [k for k in update if k != "update_id"]
        if not kinds:
            return True  # malformed updates are delivered as they are
        if self.allowed_updates:
            return kinds[0] in self.allowed_updates
        return kinds[0] not in NOT_DEFAULT_UPDATES

    async def _m_deleteWebhook(self, p: Params) -> Any:
        if p.bool("drop_pending_updates"):
            self.updates.clear()
        if self.webhook is None:
            return _Described(True, "Webhook is already deleted")
        self.webhook = None
        return _Described(True, "Webhook was deleted")

    async def _m_setWebhook(self, p: Params) -> Any:
        url = p.str("url") or ""
        if not url:
            return await self._m_deleteWebhook(p)
        parts = urlsplit(url)
        if self.strict_webhook and parts.scheme != "https":
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        if self.strict_webhook and (parts.port or 443) not in (443, 80, 88, 8443):
            raise bad_request("bad webhook: Webhook can be set up only on ports 80, 88, 443 or 8443")
        secret = p.str("secret_token")
        if secret is not None and not SECRET_TOKEN_RE.fullmatch(secret):
            raise bad_request("secret token contains unallowed characters")
        allowed = p.json("allowed_updates", "can't parse allowed_updates JSON object")
        if isinstance(allowed, list):
            self.allowed_updates = [str(a) for a in allowed]
        if p.bool("drop_pending_updates"):
            self.updates.clear()
        new = {"url": url, "secret_token": secret, "max_connections": p.int("max_connections", 40)}
        same = self.webhook == new
        self.webhook = new
        self._notify()
        return _Described(True, "Webhook is already set" if same else "Webhook was set")

    async def _m_getWebhookInfo(self, p: Params) -> Any:
        info: dict[str, Any] = {
            "url": self.webhook["url"] if self.webhook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(self.updates),
        }
        if self.webhook:
            info["max_connections"] = self.webhook["max_connections"]
            info["ip_address"] = "127.0.0.1"
            if self.allowed_updates:
                info["allowed_updates"] = self.allowed_updates
        return info

    def _commands_key(self, p: Params) -> tuple[str, str]:
        scope = p.json("scope", "can't parse BotCommandScope JSON object")
        if scope is not None and not (isinstance(scope, dict) and isinstance(scope.get("type"), str)):
            raise bad_request("can't parse BotCommandScope JSON object")
        language = p.str("language_code") or ""
        if language and not re.fullmatch(r"[a-z]{2}", language):
            raise bad_request("invalid language code specified")
        return _scope_key(scope), language

    async def _m_setMyCommands(self, p: Params) -> Any:
        commands = p.json("commands", "can't parse commands JSON object")
        if not isinstance(commands, list):
            raise bad_request("can't parse commands JSON object")
        if len(commands) > 100:
            raise bad_request("too many commands specified")
        clean = []
        for cmd in commands:
            if not isinstance(cmd, dict):
                raise bad_request("can't parse BotCommand JSON object")
            name, description = cmd.get("command"), cmd.get("description")
            if not isinstance(name, str) or not COMMAND_RE.fullmatch(name.lstrip("/")):
                raise bad_request("BOT_COMMAND_INVALID")
            if not isinstance(description, str) or not 1 <= len(description.strip()) <= 256:
                raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
            clean.append({"command": name.lstrip("/"), "description": description})
        key = self._commands_key(p)
        if clean:
            self.commands[key] = clean
        else:
            self.commands.pop(key, None)
        return True

    async def _m_getMyCommands(self, p: Params) -> Any:
        return self.commands.get(self._commands_key(p), [])

    async def _m_deleteMyCommands(self, p: Params) -> Any:
        self.commands.pop(self._commands_key(p), None)
        return True

    async def _m_setMyDescription(self, p: Params) -> Any:
        return self._set_description(p, "description", 512)

    async def _m_setMyShortDescription(self, p: Params) -> Any:
        return self._set_description(p, "short_description", 120)

    def _set_description(self, p: Params, key: str, limit: int) -> bool:
        value = p.str(key) or ""
        if len(value) > limit:
            raise bad_request(f"{key} is too long")
        self.descriptions[(key, p.str("language_code") or "")] = value
        return True

    async def _m_sendMessage(self, p: Params) -> Any:
        chat = self._chat(p)
        text, entities = self._formatted(p, "text", "entities", TEXT_LIMIT, required=True)
        markup = self._markup(p, inline_only=False)
        thread_id = self._thread(chat, p)
        reply_to = self._reply_to(chat, p)
        msg = self._store_bot_message(
            chat, "text", text=text, entities=entities, reply_markup=markup, message_thread_id=thread_id,
            reply_to_message=reply_to,
        )
        self._record("sendMessage", msg, p)
        return msg

    async def _m_editMessageText(self, p: Params) -> Any:
        chat = self._chat(p)
        msg, meta = self._message(chat, p, action="edit")
        text, entities = self._formatted(p, "text", "entities", TEXT_LIMIT, required=True)
        markup = self._markup(p, inline_only=True)
        if not meta["from_bot"]:
            raise bad_request("message can't be edited")
        if meta["kind"] != "text":
            raise bad_request("there is no text in the message to edit")
        if msg.get("text") == text and msg.get("entities", []) == entities and msg.get("reply_markup") == markup:
            raise bad_request(NOT_MODIFIED)
        msg["text"] = text
        _set_or_drop(msg, "entities", entities)
        _set_or_drop(msg, "reply_markup", markup)
        msg["edit_date"] = int(self.now())
        self._record("editMessageText", msg, p)
        return msg

    async def _m_editMessageReplyMarkup(self, p: Params) -> Any:
        chat = self._chat(p)
        msg, meta = self._message(chat, p, action="edit")
        markup = self._markup(p, inline_only=True)
        if not meta["from_bot"]:
            raise bad_request("message can't be edited")
        if msg.get("reply_markup") == markup:
            raise bad_request(NOT_MODIFIED)
        _set_or_drop(msg, "reply_markup", markup)
        msg["edit_date"] = int(self.now())
        self._record("editMessageReplyMarkup", msg, p)
        return msg

    async def _m_answerCallbackQuery(self, p: Params) -> Any:
        query_id = p.str("callback_query_id")
        state = self._callbacks.get(query_id or "")
        if state is None or state["answered"]:
            raise bad_request(QUERY_INVALID)
        text = p.str("text")
        if text is not None and len(text) > 200:
            raise bad_request("MESSAGE_TOO_LONG")
        state["answered"] = True
        self.callback_answers.append(
            {"callback_query_id": query_id, "text": text, "show_alert": p.bool("show_alert"), "time": self.now()}
        )
        return True

    async def _m_deleteMessage(self, p: Params) -> Any:
        chat = self._chat(p)
        msg, meta = self._message(chat, p, action="delete")
        self._check_deletable(chat, msg, meta)
        meta["deleted"] = True
        self.deleted.append((chat["id"], msg["message_id"]))
        return True

    async def _m_deleteMessages(self, p: Params) -> Any:
        chat = self._chat(p)
        ids = p.json("message_ids", "can't parse message identifiers JSON object")
        if not isinstance(ids, list) or not 1 <= len(ids) <= 100:
            raise bad_request("message identifiers are not specified")
        for message_id in ids:
            key = (chat["id"], int(message_id))
            meta = self._meta.get(key)
            if meta is None or meta["deleted"]:
                continue  # Telegram skips messages it can't find
            self._check_deletable(chat, self.messages[key], meta)
        for message_id in ids:
            key = (chat["id"], int(message_id))
            meta = self._meta.get(key)
            if meta is not None and not meta["deleted"]:
                meta["deleted"] = True
                self.deleted.append(key)
        return True

    def _check_deletable(self, chat: dict[str, Any], msg: dict[str, Any], meta: dict[str, Any]) -> None:
        if self.now() - msg["date"] > DELETE_WINDOW:
            raise bad_request("message can't be deleted for everyone")
        if chat["type"] != "private" and not meta["from_bot"]:
            raise bad_request("message can't be deleted")

    async def _m_sendChatAction(self, p: Params) -> Any:
        chat = self._chat(p)
        action = p.str("action")
        if action not in CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        self.actions.append({"chat_id": chat["id"], "action": action, "time": self.now()})
        return True

    def _copy_source(self, p: Params, action: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        target = self._chat(p)
        source_chat = self._chat(p, "from_chat_id")
        message_id = p.int("message_id")
        if message_id is None:
            raise bad_request("message identifier is not specified")
        key = (source_chat["id"], message_id)
        if key not in self.messages or self._meta[key]["deleted"]:
            raise bad_request(f"message to {action} not found")
        return target, self.messages[key], self._meta[key]

    async def _m_copyMessage(self, p: Params) -> Any:
        target, source, meta = self._copy_source(p, "copy")
        markup = self._markup(p, inline_only=False)
        thread_id = self._thread(target, p)
        content: dict[str, Any] = {}
        if meta["kind"] == "text":
            content = {"text": source.get("text"), "entities": source.get("entities")}
        else:
            media = {"photo", "voice", "sticker"}
            content = {k: v for k, v in source.items() if k in media}
            if meta["kind"] != "sticker":
                if "caption" in p:
                    caption, ents = self._formatted(p, "caption", "caption_entities", CAPTION_LIMIT, required=False)
                    content.update(caption=caption, caption_entities=ents)
                else:
                    content.update(caption=source.get("caption"), caption_entities=source.get("caption_entities"))
        msg = self._store_bot_message(target, meta["kind"], reply_markup=markup, message_thread_id=thread_id, **content)
        self._record(
            "copyMessage", msg, p, from_chat_id=source["chat"]["id"], source_message_id=source["message_id"]
        )
        return {"message_id": msg["message_id"]}

    async def _m_forwardMessage(self, p: Params) -> Any:
        target, source, meta = self._copy_source(p, "forward")
        thread_id = self._thread(target, p)
        keys = {"text", "entities", "photo", "voice", "sticker", "caption", "caption_entities"}
        content = {k: v for k, v in source.items() if k in keys}
        origin = (
            {"type": "user", "sender_user": source["from"], "date": source["date"]}
            if "from" in source
            else {"type": "hidden_user", "sender_user_name": "Hidden", "date": source["date"]}
        )
        msg = self._store_bot_message(
            target, meta["kind"], message_thread_id=thread_id, forward_origin=origin, **content
        )
        self._record(
            "forwardMessage", msg, p, from_chat_id=source["chat"]["id"], source_message_id=source["message_id"]
        )
        return msg

    async def _m_createForumTopic(self, p: Params) -> Any:
        chat = self._chat(p)
        if chat["type"] != "supergroup" or not chat.get("is_forum"):
            raise bad_request("the chat is not a forum")
        name = p.str("name") or ""
        if not name.strip():
            raise bad_request("TOPIC_TITLE_EMPTY")
        if len(name) > 128:
            raise bad_request("TOPIC_TITLE_INVALID")
        icon_color = p.int("icon_color", 7322096)
        service = self._store_bot_message(
            chat, "service", forum_topic_created={"name": name, "icon_color": icon_color}
        )
        thread_id = service["message_id"]
        service["message_thread_id"] = thread_id
        self._forum_topics.setdefault(chat["id"], set()).add(thread_id)
        topic = {"message_thread_id": thread_id, "name": name, "icon_color": icon_color}
        if "icon_custom_emoji_id" in p:
            topic["icon_custom_emoji_id"] = p.str("icon_custom_emoji_id")
        self.topics.append({"chat_id": chat["id"], **topic})
        return topic

    async def _m_close(self, p: Params) -> Any:
        return True

    async def _m_logOut(self, p: Params) -> Any:
        return True


@dataclass
class _Described:
    """A successful result that also carries Telegram's ``description`` (setWebhook & co)."""

    value: Any
    description: str


def _scope_key(scope: dict[str, Any] | None) -> str:
    return json.dumps(scope or {"type": "default"}, sort_keys=True)


def _set_or_drop(msg: dict[str, Any], key: str, value: Any) -> None:
    if value:
        msg[key] = value
    else:
        msg.pop(key, None)


def _valid_button_url(url: Any) -> bool:
    if not isinstance(url, str) or not url or any(ch.isspace() for ch in url):
        return False
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        return bool(parts.hostname)
    if scheme == "tg":
        return url.lower().startswith("tg://") and len(url) > len("tg://")
    return False


def _check_inline_keyboard(rows: Any) -> list[list[dict[str, Any]]]:
    if not isinstance(rows, list):
        raise bad_request('can\'t parse inline keyboard button: Field "inline_keyboard" must be of type Array')
    total = 0
    clean_rows = []
    for row in rows:
        if not isinstance(row, list):
            raise bad_request("can't parse inline keyboard button: InlineKeyboardButton must be an Array")
        clean_row = []
        for button in row:
            total += 1
            if not isinstance(button, dict):
                raise bad_request("can't parse inline keyboard button: InlineKeyboardButton must be an Object")
            button = {k: v for k, v in button.items() if v is not None}
            text = button.get("text")
            if not isinstance(text, str):
                raise bad_request('can\'t parse inline keyboard button: Field "text" must be of type String')
            if not text.strip():
                raise bad_request("BUTTON_TEXT_INVALID")
            actions = [k for k in BUTTON_ACTIONS if k in button]
            if not actions:
                raise bad_request(
                    "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
                )
            if len(actions) > 1:
                raise bad_request("can't parse inline keyboard button: Can't find field with button type")
            action = actions[0]
            if action == "callback_data":
                data = button["callback_data"]
                if not isinstance(data, str) or not 1 <= len(data.encode("utf-8")) <= CALLBACK_DATA_LIMIT:
                    raise bad_request("BUTTON_DATA_INVALID")
            elif action == "url":
                if not _valid_button_url(button["url"]):
                    raise bad_request("BUTTON_URL_INVALID")
            elif action == "web_app":
                url = button["web_app"].get("url") if isinstance(button["web_app"], dict) else None
                if not isinstance(url, str) or not url.startswith("https://"):
                    raise bad_request("BUTTON_URL_INVALID")
            elif action == "login_url":
                url = button["login_url"].get("url") if isinstance(button["login_url"], dict) else None
                if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                    raise bad_request("BUTTON_URL_INVALID")
            elif action == "copy_text":
                copy = button["copy_text"]
                value = copy.get("text") if isinstance(copy, dict) else None
                if not isinstance(value, str) or not 1 <= len(value) <= 256:
                    raise bad_request("BUTTON_COPY_TEXT_INVALID")
            clean_row.append(button)
        clean_rows.append(clean_row)
    if total > MAX_BUTTONS:
        raise bad_request("reply markup is too long")
    return clean_rows
