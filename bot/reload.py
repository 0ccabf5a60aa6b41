"""Hold the loaded content with its Understander and Engine, and swap all three together on a good reload."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.content.loader import Content, ContentError, Problem, load_content

if TYPE_CHECKING:
    import asyncio

    from bot.engine.engine import Engine
    from bot.nlu.pipeline import Understander

log = logging.getLogger(__name__)

CHECK_INTERVAL_S = 1.0
Fingerprint = tuple[tuple[str, int, int], ...]


@dataclass(frozen=True)
class LoadedContent:
    """One consistent generation: the content and what was built from it."""

    content: Content
    understander: Understander
    engine: Engine
    fingerprint: Fingerprint
    loaded_at: float


def _validators() -> list[Callable[[Content], list[Problem]]]:
    """Cross-file checks, when the content package provides them (bot/content/validate.py)."""
    try:
        from bot.content import validate as module  # noqa: PLC0415 - optional, owned by the content layer
    except ImportError:
        return []
    found = getattr(module, "validate_content", None) or getattr(module, "validate", None)
    return [found] if callable(found) else []


def build(directory: Path) -> LoadedContent:
    """Load, validate and build everything; raise ContentError with `path:line` problems on any failure."""
    from bot.engine.engine import Engine  # noqa: PLC0415 - content must not import the engine at module level
    from bot.nlu.pipeline import Understander  # noqa: PLC0415

    fingerprint = content_fingerprint(directory)
    try:
        content = load_content(directory)
        problems: list[Problem] = []
        for check in _validators():
            problems.extend(p for p in check(content) if not p.warning)
        if problems:
            raise ContentError(problems)
        understander = Understander(content)
        engine = Engine(content, understander)
    except ContentError:
        raise
    except Exception as error:  # a date like 2026-02-30, a pattern that does not compile ...
        raise ContentError([Problem(str(directory), 1, f"{type(error).__name__}: {error}")]) from error
    return LoadedContent(content, understander, engine, fingerprint, time.time())


def content_fingerprint(directory: Path) -> Fingerprint:
    """(name, mtime_ns, size) of resources.yaml and intents/*.yaml: cheap to take, changes on any edit."""
    root = Path(directory)
    entries: list[tuple[str, int, int]] = []
    for path in [root / "resources.yaml", *sorted((root / "intents").glob("*.yaml"))]:
        try:
            stat = path.stat()
        except OSError:
            entries.append((path.name, -1, -1))
            continue
        entries.append((str(path.relative_to(root)), stat.st_mtime_ns, stat.st_size))
    return tuple(entries)


class ContentHolder:
    """`current` is always a complete, valid generation; a failed reload keeps the previous one."""

    def __init__(self, directory: Path | str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.directory = Path(directory)
        self._clock = clock
        self._current: LoadedContent | None = None
        self._last_check = float("-inf")
        self._lock = threading.Lock()
        self.last_problems: list[Problem] = []
        self._failed_fingerprint: Fingerprint | None = None

    @property
    def loaded(self) -> bool:
        return self._current is not None

    @property
    def current(self) -> LoadedContent:
        if self._current is None:
            raise RuntimeError("content is not loaded: call ContentHolder.load() first")
        return self._current

    def load(self) -> LoadedContent:
        """The first load: raises ContentError (the shells print the problems and refuse to start)."""
        loaded = build(self.directory)
        with self._lock:
            self._current = loaded
            self._last_check = self._clock()
        log.info("content loaded dir=%s digest=%s intents=%d", self.directory, loaded.content.digest, len(loaded.content.intents))
        return loaded

    def reload(self) -> list[Problem]:
        """Load again; on problems keep the old generation, log each `path:line: message`, and return them."""
        with self._lock:
            self._last_check = self._clock()
            try:
                loaded = build(self.directory)
            except ContentError as error:
                self.last_problems = list(error.problems)
                for problem in error.problems:
                    log.error("content reload failed, keeping the previous content: %s", problem)
                return self.last_problems
            except Exception as error:  # noqa: BLE001 - a reload never takes the bot down
                problem = Problem(str(self.directory), 1, f"{type(error).__name__} while loading content")
                self.last_problems = [problem]
                log.error("content reload failed, keeping the previous content: %s", problem)
                return self.last_problems
            old = self._current
            self._current = loaded
            self.last_problems = []
        log.info(
            "content reloaded dir=%s digest=%s previous=%s",
            self.directory,
            loaded.content.digest,
            old.content.digest if old else None,
        )
        return []

    def check_due(self) -> bool:
        """Whether `maybe_reload` would look at the files now (cheap: no file access)."""
        return self._current is not None and self._clock() - self._last_check >= CHECK_INTERVAL_S

    def maybe_reload(self) -> list[Problem] | None:
        """At most once per CHECK_INTERVAL_S: reload when a content file changed. None when nothing was done."""
        now = self._clock()
        if now - self._last_check < CHECK_INTERVAL_S or self._current is None:
            return None
        self._last_check = now
        fingerprint = content_fingerprint(self.directory)
        if fingerprint == self._current.fingerprint or fingerprint == self._failed_fingerprint:
            return None  # unchanged, or the same broken files: don't log the same errors every second
        problems = self.reload()
        self._failed_fingerprint = fingerprint if problems else None
        return problems

    def install_sighup(self, loop: asyncio.AbstractEventLoop | None = None) -> bool:
        """Reload on SIGHUP (`kill -HUP <pid>`). With a running asyncio loop the reload runs on the loop.

        Returns False where the platform has no SIGHUP.
        """
        if not hasattr(signal, "SIGHUP"):
            return False
        if loop is not None:
            loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
        else:
            signal.signal(signal.SIGHUP, lambda _signum, _frame: self._on_sighup())
        return True

    def _on_sighup(self, *_: Any) -> None:
        log.info("SIGHUP: reloading content")
        self.reload()
