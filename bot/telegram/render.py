"""Turn an engine Reply into Telegram messages: entities for `*bold*`, split under 4096, one keyboard.

Texts become `aiogram.utils.formatting` nodes, never a parse mode, so neither YAML text nor anything
a person typed is ever read as markup. A reply longer than Telegram's limit is split on line
boundaries, greedily from the top: the engine puts the emergency number and the crisis lines first,
so they always land in the first message. The keyboard rides on the last message.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aiogram.types import CopyTextButton, InlineKeyboardButton, InlineKeyboardMarkup, MessageEntity
from aiogram.utils.formatting import Bold, Text

from bot.engine.reply import TELEGRAM_TEXT_LIMIT, Button, Reply, markup_segments, url_allowed, utf16_len
from bot.telegram.callbacks import pack_press

log = logging.getLogger(__name__)

MAX_BUTTONS = 100  # Telegram's limit per inline keyboard
COPY_TEXT_LIMIT = 256
PAIR_LABEL_MAX = 18  # two short buttons of the same kind share a row; links always get their own

Run = tuple[str, bool]  # (text, bold)
Line = list[Run]


@dataclass(frozen=True)
class OutgoingMessage:
    """One sendMessage: plain text, its entities and (on the last message only) the keyboard."""

    text: str
    entities: tuple[MessageEntity, ...] = ()
    reply_markup: InlineKeyboardMarkup | None = None

    def kwargs(self, *, with_entities: bool = True, with_markup: bool = True) -> dict[str, Any]:
        """Keyword arguments for `Bot.send_message` (parse_mode None: nothing is parsed)."""
        out: dict[str, Any] = {"text": self.text, "parse_mode": None}
        if with_entities and self.entities:
            out["entities"] = list(self.entities)
        if with_markup and self.reply_markup is not None:
            out["reply_markup"] = self.reply_markup
        return out


def render_reply(reply: Reply, *, limit: int = TELEGRAM_TEXT_LIMIT) -> list[OutgoingMessage]:
    """The messages to send for `reply`, in order; the keyboard is on the last one."""
    chunks = split_lines(text_lines(reply.text), limit)
    messages = [_message(chunk) for chunk in chunks]
    messages = [m for m in messages if m.text.strip()]
    markup = keyboard(reply.buttons)
    if not messages:
        log.error("reply has no text buttons=%d", len(reply.buttons))
        return []
    last = messages[-1]
    messages[-1] = OutgoingMessage(last.text, last.entities, markup)
    return messages


# --- text ------------------------------------------------------------------------------------------


def text_lines(marked_up: str) -> list[Line]:
    """The reply's `*bold*` markup as lines of (text, bold) runs."""
    lines: list[Line] = [[]]
    for part, bold in markup_segments(marked_up):
        pieces = part.split("\n")
        for index, piece in enumerate(pieces):
            if index:
                lines.append([])
            if piece:
                lines[-1].append((piece, bold))
    return lines


def _line_len(line: Line) -> int:
    return sum(utf16_len(text) for text, _ in line)


def split_lines(lines: Sequence[Line], limit: int) -> list[list[Line]]:
    """Pack lines greedily into chunks of at most `limit` UTF-16 units (newlines counted)."""
    chunks: list[list[Line]] = []
    current: list[Line] = []
    size = 0
    for line in lines:
        for piece in _cut_long_line(line, limit):
            length = _line_len(piece)
            extra = length + (1 if current else 0)
            if current and size + extra > limit:
                chunks.append(current)
                current, size = [], 0
                extra = length
            current.append(piece)
            size += extra
    if current:
        chunks.append(current)
    return [trimmed for chunk in chunks if (trimmed := _trim(chunk))]


def _cut_long_line(line: Line, limit: int) -> list[Line]:
    """A line longer than the limit, cut at spaces where possible (never inside a surrogate pair)."""
    if _line_len(line) <= limit:
        return [line]
    out: list[Line] = []
    current: Line = []
    room = limit
    for text, bold in line:
        rest = text
        while rest:
            size = utf16_len(rest)
            if size <= room:
                current.append((rest, bold))
                room -= size
                break
            head = _prefix_within(rest, room)
            space = head.rfind(" ")
            if space > 0 and space > len(head) // 2:
                head = head[: space + 1]
            if not head and not current:
                head = rest[0]  # a limit smaller than one character: never loop forever
            if head:
                current.append((head, bold))
                rest = rest[len(head) :]
            out.append(current)
            current, room = [], limit
    if current:
        out.append(current)
    return [piece for piece in out if piece]


def _prefix_within(text: str, units: int) -> str:
    """The longest prefix of `text` whose UTF-16 length is at most `units`."""
    count = 0
    for index, char in enumerate(text):
        count += 2 if ord(char) > 0xFFFF else 1
        if count > units:
            return text[:index]
    return text


def _trim(chunk: list[Line]) -> list[Line]:
    """Drop blank lines at either end (Telegram trims them, which would shift entity offsets)."""
    start, end = 0, len(chunk)
    while start < end and not "".join(t for t, _ in chunk[start]).strip():
        start += 1
    while end > start and not "".join(t for t, _ in chunk[end - 1]).strip():
        end -= 1
    return chunk[start:end]


def _message(chunk: list[Line]) -> OutgoingMessage:
    nodes: list[Any] = []
    for index, line in enumerate(chunk):
        if index:
            nodes.append("\n")
        for text, bold in line:
            nodes.append(Bold(text) if bold else text)
    if nodes and isinstance(nodes[0], str):
        nodes[0] = nodes[0].lstrip()
    if nodes and isinstance(nodes[-1], str):
        nodes[-1] = nodes[-1].rstrip()
    rendered = Text(*nodes).as_kwargs()
    return OutgoingMessage(rendered["text"], tuple(rendered["entities"] or ()))


# --- keyboard --------------------------------------------------------------------------------------


def link_allowed(url: str) -> bool:
    """Telegram takes only http(s) links with a host, and tg:// links, on URL buttons."""
    if not url_allowed(url) or any(ch.isspace() for ch in url):
        return False
    parts = urlsplit(url)
    if parts.scheme in ("http", "https"):
        return bool(parts.hostname)
    return parts.scheme == "tg"


def inline_button(button: Button) -> InlineKeyboardButton | None:
    """The Telegram button for an engine Button, or None when Telegram would refuse it."""
    label = button.label.strip()
    if not label:
        return None
    if button.kind == "url":
        if button.url is None or not link_allowed(button.url):
            log.warning("button dropped kind=url reason=scheme")
            return None
        return InlineKeyboardButton(text=label, url=button.url)
    if button.kind == "copy":
        value = button.copy_text or ""
        if not 1 <= len(value) <= COPY_TEXT_LIMIT:
            log.warning("button dropped kind=copy reason=length")
            return None
        return InlineKeyboardButton(text=label, copy_text=CopyTextButton(text=value))
    data = pack_press(button.action, button.value)
    if data is None:
        return None
    return InlineKeyboardButton(text=label, callback_data=data)


def keyboard(buttons: Sequence[Button]) -> InlineKeyboardMarkup | None:
    """Buttons in the engine's order; two short buttons of the same kind share a row, links stand alone."""
    rows: list[list[InlineKeyboardButton]] = []
    row_kind: str | None = None
    count = 0
    for button in buttons:
        made = inline_button(button)
        if made is None:
            continue
        if count >= MAX_BUTTONS:
            log.warning("buttons dropped reason=limit count=%d", len(buttons) - MAX_BUTTONS)
            break
        count += 1
        pairable = button.kind != "url" and len(button.label) <= PAIR_LABEL_MAX
        if rows and pairable and row_kind == button.kind and len(rows[-1]) == 1:
            rows[-1].append(made)
            row_kind = None  # full
            continue
        rows.append([made])
        row_kind = button.kind if pairable else None
    return InlineKeyboardMarkup(inline_keyboard=rows) if rows else None
