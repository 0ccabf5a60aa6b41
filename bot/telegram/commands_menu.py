"""Publish the command menu (setMyCommands) for each content language on start-up.

Descriptions come from the content: the `help` reply's "/command - description" lines, then the
label of the button with the same action (emoji removed), and only then `PENDING_TEXTS`. A command
whose section is empty (e.g. /videos with no videos) is not offered.
"""

from __future__ import annotations

import logging
import re

from aiogram import Bot
from aiogram.types import BotCommand, BotCommandScopeAllGroupChats, BotCommandScopeAllPrivateChats

from bot.engine.reply import plain_text
from bot.reload import LoadedContent
from bot.telegram.pending_texts import PENDING_TEXTS

log = logging.getLogger(__name__)

PRIVATE_COMMANDS = (
    "sos",
    "help",
    "menu",
    "resources",
    "videos",
    "creators",
    "organizations",
    "language",
    "region",
    "privacy",
    "forget",
    "stop",
)
GROUP_COMMANDS = ("sos", "help")
DESCRIPTION_LIMIT = 256
_HELP_LINE = re.compile(r"^\s*/([a-z_]+)\s+[-–—:]\s+(.+?)\s*$", re.MULTILINE)
_LEADING_SYMBOLS = re.compile(r"^[^\w¿¡]+", re.UNICODE)


def help_descriptions(loaded: LoadedContent, language: str) -> dict[str, str]:
    """"/sos - crisis lines, any time" lines of the `help` reply, as {command: description}."""
    renderer = loaded.engine.renderer
    text = renderer.text("help", language, loaded.engine.regions[0] if loaded.engine.regions else "*") or ""
    return {name: plain_text(description) for name, description in _HELP_LINE.findall(text)}


def description_for(loaded: LoadedContent, command: str, language: str, from_help: dict[str, str]) -> str:
    if command in from_help:
        return from_help[command]
    label = loaded.engine.renderer.button_for_action(command, language)
    if label is not None:
        stripped = _LEADING_SYMBOLS.sub("", label.label).strip()
        if stripped:
            return stripped
    return PENDING_TEXTS.get(f"command_{command}", command)


def offered(loaded: LoadedContent, command: str) -> bool:
    """Sections with nothing in them are never offered (no /videos while there are no videos)."""
    return loaded.engine.renderer.has_section.get(command, True)


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def command_menu(loaded: LoadedContent, language: str, commands: tuple[str, ...] = PRIVATE_COMMANDS) -> list[BotCommand]:
    from_help = help_descriptions(loaded, language)
    return [
        BotCommand(command=name, description=_sentence(description_for(loaded, name, language, from_help))[:DESCRIPTION_LIMIT])
        for name in commands
        if offered(loaded, name)
    ]


async def publish_commands(bot: Bot, loaded: LoadedContent) -> bool:
    """Set the menus: private chats per language (the first language also as the default), groups /sos /help."""
    languages = loaded.engine.languages
    ok = True
    for language_code in (None, *languages):
        language = language_code or languages[0]
        for scope, commands in (
            (BotCommandScopeAllPrivateChats(), PRIVATE_COMMANDS),
            (BotCommandScopeAllGroupChats(), GROUP_COMMANDS),
        ):
            try:
                await bot.set_my_commands(command_menu(loaded, language, commands), scope=scope, language_code=language_code)
            except Exception as error:  # noqa: BLE001 - a missing menu never stops the bot
                ok = False
                log.warning("set commands failed language=%s scope=%s error=%s", language_code, scope.type, type(error).__name__)
    return ok
