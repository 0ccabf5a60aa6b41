"""Helpers for the referral tests: a content copy with the example organisation, a real webhook receiver
on 127.0.0.1 that verifies our signatures and deduplicates on Idempotency-Key, and an injected clock."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import socket
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from bot.content.loader import Content
from bot.referrals.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_ORG = ROOT / "examples" / "referral-org.yaml"
ORG_ID = "example-crisis-partner"
SECRET = b"example-secret-0123456789abcdef"
SECRET_ENV = "HUBBOT_REFERRAL_SECRET_EXAMPLE"
T0 = 1_767_261_600.0  # 2026-01-01 10:00 UTC


def example_org() -> dict[str, Any]:
    return yaml.safe_load(EXAMPLE_ORG.read_text(encoding="utf-8"))


def build_content_dir(target: Path, **referral: Any) -> Path:
    """The shipped content plus the example organisation (its `referral:` keys overridden by `referral`)."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copytree(ROOT / "intents", target / "intents", dirs_exist_ok=True)
    resources = yaml.safe_load((ROOT / "resources.yaml").read_text(encoding="utf-8"))
    org = example_org()
    org["referral"].update(referral)
    resources["organizations"].append(org)
    (target / "resources.yaml").write_text(yaml.safe_dump(resources, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return target


def with_referral(content: Content, **changes: Any) -> Content:
    """The same content with the example organisation's referral block changed (e.g. its url)."""
    orgs = []
    for org in content.resources.organizations:
        if org.id == ORG_ID and org.referral is not None:
            org = org.model_copy(update={"referral": org.referral.model_copy(update=changes)})
        orgs.append(org)
    return dataclasses.replace(content, resources=content.resources.model_copy(update={"organizations": orgs}))


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Sleeps:
    """An injected sleep that records what was asked and returns at once (after yielding to the loop)."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        await asyncio.sleep(0)


@dataclass(frozen=True)
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    text: str = ""
    process_first: bool = False  # a failure after the receiver already stored the referral


@dataclass
class Received:
    key: str | None
    timestamp: str | None
    signature: str | None
    body: bytes
    verified: bool
    status: int


class Receiver:
    """An organisation's intake endpoint on 127.0.0.1: verifies the signature, answers as scripted,
    and processes each Idempotency-Key at most once (a duplicate gets 200 without processing)."""

    def __init__(self, clock: Callable[[], float], secrets: list[bytes], *, path: str = "/intake") -> None:
        self.clock = clock
        self.secrets = secrets
        self.path = path
        self.script: list[Answer] = []
        self.decide: Callable[[str | None], Answer] | None = None
        self.requests: list[Received] = []
        self.processed: Counter[str] = Counter()
        self.successes: Counter[str] = Counter()  # 2xx answers per key
        self.duplicates: Counter[str] = Counter()  # keys that arrived again after being processed
        self.hold: asyncio.Event | None = None
        self.arrived = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post(self.path, self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        return self

    async def stop(self) -> None:
        if self.hold is not None:
            self.hold.set()
        if self._runner is not None:
            await self._runner.cleanup()

    def _answer(self, key: str | None) -> Answer:
        if self.script:
            return self.script.pop(0)
        if self.decide is not None:
            return self.decide(key)
        return Answer()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        timestamp = request.headers.get(TIMESTAMP_HEADER)
        signature = request.headers.get(SIGNATURE_HEADER)
        key = request.headers.get("Idempotency-Key")
        verified = verify(signature, timestamp, body, self.secrets, now=self.clock())
        answer = Answer(401, text="bad signature") if not verified else self._answer(key)
        if verified and key is not None and (200 <= answer.status < 300 or answer.process_first):
            if key in self.processed:
                self.duplicates[key] += 1  # acknowledged again without processing it again
            else:
                self.processed[key] = 1
        if 200 <= answer.status < 300 and key is not None:
            self.successes[key] += 1
        self.requests.append(Received(key, timestamp, signature, body, verified, answer.status))
        self.arrived.set()
        if self.hold is not None:
            await self.hold.wait()
        return web.Response(status=answer.status, headers=answer.headers, text=answer.text)


class Notifications:
    """An injected notify_person that records (user_key, chat_id, reply)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, int, Any]] = []

    async def __call__(self, user_key: str, chat_id: int, reply: Any) -> None:
        self.sent.append((user_key, chat_id, reply))
