"""ContentHolder: a good reload swaps content, understander and engine together; a broken one keeps the old."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from bot.content.loader import ContentError
from bot.reload import CHECK_INTERVAL_S, ContentHolder
from bot.engine import Turn
from tests.unit.engine_support import T0, copy_content


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _touch_later(path: Path) -> None:
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))


def _edit_menu_text(directory: Path, new_text: str) -> None:
    path = directory / "intents" / "conversation.yaml"
    text = path.read_text(encoding="utf-8")
    old = 'en: "What would you like to look at?"'
    assert old in text, "the test edits the menu reply of the shipped content"
    path.write_text(text.replace(old, f'en: "{new_text}"'), encoding="utf-8")
    _touch_later(path)


def test_load_builds_a_working_generation(tmp_path: Path) -> None:
    holder = ContentHolder(copy_content(tmp_path / "content"))
    loaded = holder.load()
    assert holder.current is loaded and loaded.engine.content is loaded.content is loaded.understander.content
    decision = loaded.engine.handle(None, Turn("u", now=T0, command="sos"), default_region="US")
    assert decision.rule == "sos_command"


def test_first_load_of_broken_content_raises_with_path_and_line(tmp_path: Path) -> None:
    directory = copy_content(tmp_path / "content")
    (directory / "intents" / "broken.yaml").write_text("intents:\n  - id: x\n    topics: [anxiety]\n    bogus: 1\n", encoding="utf-8")
    with pytest.raises(ContentError) as raised:
        ContentHolder(directory).load()
    assert any(p.path == "intents/broken.yaml" and p.line >= 2 for p in raised.value.problems)


def test_reload_with_broken_content_keeps_the_old_one(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    directory = copy_content(tmp_path / "content")
    holder = ContentHolder(directory)
    old = holder.load()
    (directory / "resources.yaml").write_text("languages: [en]\nhub: {name: x}\n  bad indent: [\n", encoding="utf-8")
    with caplog.at_level(logging.ERROR, logger="bot.reload"):
        problems = holder.reload()
    assert problems and all(p.path == "resources.yaml" for p in problems)
    assert holder.current is old
    assert "resources.yaml:" in caplog.text  # path:line in the log
    decision = holder.current.engine.handle(None, Turn("u", now=T0, command="sos"), default_region="US")
    assert decision.reply.resources, "the old content still answers with crisis lines"


def test_reload_with_a_validation_problem_keeps_the_old_one(tmp_path: Path) -> None:
    directory = copy_content(tmp_path / "content")
    holder = ContentHolder(directory)
    old = holder.load()
    path = directory / "intents" / "conversation.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("  menu: {label:", "  menu_renamed: {label:", 1), encoding="utf-8")
    problems = holder.reload()
    assert problems, "a button the intents refer to is gone: validate must reject it"
    assert holder.current is old


def test_maybe_reload_notices_an_edit_at_most_once_per_interval(tmp_path: Path) -> None:
    directory = copy_content(tmp_path / "content")
    clock = Clock()
    holder = ContentHolder(directory, clock=clock)
    first = holder.load()
    _edit_menu_text(directory, "Pick one")
    clock.now += CHECK_INTERVAL_S / 2
    assert holder.maybe_reload() is None and holder.current is first  # too soon to look
    clock.now += CHECK_INTERVAL_S
    assert holder.maybe_reload() == []
    assert holder.current is not first
    menu = holder.current.engine.handle(None, Turn("u", now=T0, command="menu"), default_region="US")
    assert menu.reply.text.startswith("Pick one")
    clock.now += CHECK_INTERVAL_S * 2
    second = holder.current
    assert holder.maybe_reload() is None and holder.current is second  # nothing changed


def test_sighup_reloads(tmp_path: Path) -> None:
    import signal

    directory = copy_content(tmp_path / "content")
    holder = ContentHolder(directory)
    first = holder.load()
    previous = signal.getsignal(signal.SIGHUP)
    try:
        assert holder.install_sighup()
        _edit_menu_text(directory, "After HUP")
        os.kill(os.getpid(), signal.SIGHUP)
        assert holder.current is not first
    finally:
        signal.signal(signal.SIGHUP, previous)
