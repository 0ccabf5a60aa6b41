"""`hubbot chat`: talk to the bot in a terminal with the same engine, an embedded SQLite file, no network."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from bot.app import HubbotApp
from bot.content.loader import ContentError, Problem
from bot.reload import ContentHolder
from bot.engine.reply import Button, Reply, markup_segments
from bot.engine.turn import ButtonPress
from bot.settings import Settings
from bot.store import open_store

PLATFORM = "terminal"
BOLD = "\033[1m"
RESET = "\033[0m"
PROMPT = "you> "
QUIT_COMMANDS = frozenset({"/quit", "/exit"})


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def render_text(text: str, *, ansi: bool) -> str:
    """The reply text: `*bold*` kept as written, or shown in ANSI bold on a terminal."""
    if not ansi:
        return text
    return "".join(f"{BOLD}{part}{RESET}" if bold else part for part, bold in markup_segments(text))


def render_button(number: int, button: Button) -> str:
    if button.url is not None:
        return f"  [{number}] {button.label} -> {button.url}"
    if button.copy_text is not None:
        return f"  [{number}] {button.label} (copy: {button.copy_text})"
    return f"  [{number}] {button.label}"


def render_reply(reply: Reply, *, ansi: bool) -> str:
    lines = [render_text(reply.text, ansi=ansi)]
    if reply.buttons:
        lines.append("")
        lines.extend(render_button(index, button) for index, button in enumerate(reply.buttons, start=1))
    return "\n".join(lines)


def parse_line(line: str, buttons: tuple[Button, ...]) -> dict[str, Any] | Button | None:
    """A typed line as turn fields; a number presses that button (a link or copy button is returned as is)."""
    text = line.strip()
    if not text:
        return None
    if text.startswith("/") and len(text) > 1:
        command, _, argument = text[1:].partition(" ")
        command = command.split("@", 1)[0].lower()
        return {"command": command, "argument": argument.strip() or None}
    if text.isdigit() and 1 <= int(text) <= len(buttons):
        button = buttons[int(text) - 1]
        if button.kind != "callback":
            return button
        return {"button": ButtonPress(button.action, button.value)}
    return {"text": text}


def _platform_id() -> int:
    getuid = getattr(os, "getuid", None)
    return int(getuid()) if getuid is not None else 0


async def _converse(settings: Settings, holder: ContentHolder, language: str | None, region: str | None, stdin: TextIO, stdout: TextIO) -> int:
    store = open_store(settings.db)
    await store.open()
    try:
        app = HubbotApp(settings, holder, store)
        platform_id = _platform_id()
        ansi = _is_tty(stdout)
        interactive = _is_tty(stdin)
        hint = {"language_hint": language} if language else {}
        # Explicit --lang/--region are applied as if the buttons were pressed; their confirmations are not shown.
        if language:
            await app.handle(PLATFORM, platform_id, {"button": ButtonPress("language", language), **hint})
        if region:
            await app.handle(PLATFORM, platform_id, {"button": ButtonPress("region", region.upper()), **hint})
        decision = await app.handle(PLATFORM, platform_id, {"command": "start", **hint})
        buttons = decision.reply.buttons
        _write(stdout, render_reply(decision.reply, ansi=ansi) + "\n")
        while True:
            if interactive:
                _write(stdout, PROMPT)
            line = stdin.readline()
            if not line:
                if interactive:
                    _write(stdout, "\n")
                return 0
            if line.strip().lower() in QUIT_COMMANDS:
                return 0
            parsed = parse_line(line, buttons)
            if parsed is None:
                continue
            if isinstance(parsed, Button):
                shown = parsed.url if parsed.url is not None else parsed.copy_text
                _write(stdout, f"{parsed.label}: {shown}\n")
                continue
            decision = await app.handle(PLATFORM, platform_id, parsed)
            buttons = decision.reply.buttons
            _write(stdout, "\n" + render_reply(decision.reply, ansi=ansi) + "\n")
    finally:
        await store.close()


def _write(stream: TextIO, text: str) -> None:
    stream.write(text)
    stream.flush()


def run_chat(
    settings: Settings,
    *,
    language: str | None,
    region: str | None,
    stdin: TextIO = sys.stdin,
    stdout: TextIO = sys.stdout,
) -> int:
    """Run the terminal conversation until end of input; 1 when the content is invalid (problems on stderr)."""
    holder = ContentHolder(settings.content)
    try:
        holder.load()
    except ContentError as error:
        for problem in error.problems:
            shown = problem.path if Path(problem.path).is_absolute() else str(Path(settings.content) / problem.path)
            print(Problem(shown, problem.line, problem.message, problem.warning), file=sys.stderr)
        return 1
    if settings.log_level.upper() != "DEBUG":
        # The conversation owns the terminal: only warnings and errors from the bot's own loggers.
        logging.getLogger("bot").setLevel(max(logging.getLogger("bot").getEffectiveLevel(), logging.WARNING))
    try:
        return asyncio.run(_converse(settings, holder, language, region, stdin, stdout))
    except KeyboardInterrupt:
        _write(stdout, "\n")
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.chat", description="talk to the bot in this terminal")
    parser.add_argument("--lang", default=None)
    parser.add_argument("--region", default=None)
    args = parser.parse_args(argv)
    return run_chat(Settings(), language=args.lang, region=args.region)


if __name__ == "__main__":
    sys.exit(main())
