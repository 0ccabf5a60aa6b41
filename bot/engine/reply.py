"""What the person sees: text with a tiny `*bold*` markup, buttons and the ids of the resources shown.

Markup: `*` opens and closes bold; `\\*` is a literal asterisk and `\\\\` a literal backslash. Values the
engine puts into YAML templates (names, numbers) are escaped with `escape_markup`, so a line called
"*4141" cannot break the markup. Shells turn the text into entities with `markup_segments`.
"""

from __future__ import annotations

import re

from dataclasses import dataclass
from typing import Literal

TELEGRAM_TEXT_LIMIT = 4096  # UTF-16 code units
ALLOWED_URL_SCHEMES = ("http://", "https://", "tg://")

ButtonKind = Literal["callback", "url", "copy"]


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def escape_markup(value: str) -> str:
    return value.replace("\\", "\\\\").replace("*", "\\*")


_MARKUP_TOKEN = re.compile(r"\\[*\\]|\*|[^*\\]+|\\")


def markup_segments(text: str) -> list[tuple[str, bool]]:
    """Split marked-up text into (plain text, bold) runs. An unclosed `*` is shown as a literal asterisk."""
    segments: list[tuple[str, bool]] = []
    current: list[str] = []
    bold = False
    opened_at: int | None = None  # segment index where the open bold run starts
    for piece in _MARKUP_TOKEN.findall(text):
        if piece == "*":
            if current:
                segments.append(("".join(current), bold))
                current = []
            bold = not bold
            opened_at = len(segments) if bold else None
        elif len(piece) == 2 and piece[0] == "\\":
            current.append(piece[1])
        else:
            current.append(piece)
    if current:
        segments.append(("".join(current), bold))
    if bold and opened_at is not None:
        # Unclosed: everything after the stray '*' is plain, with the asterisk kept.
        head = segments[:opened_at]
        tail = "".join(part for part, _ in segments[opened_at:])
        segments = [*head, ("*" + tail, False)]
    merged: list[tuple[str, bool]] = []
    for part, is_bold in segments:
        if merged and merged[-1][1] == is_bold:
            merged[-1] = (merged[-1][0] + part, is_bold)
        elif part:
            merged.append((part, is_bold))
    return merged


def plain_text(text: str) -> str:
    """The text as the person reads it, without markup."""
    return "".join(part for part, _ in markup_segments(text))


def url_allowed(url: str) -> bool:
    return url.startswith(ALLOWED_URL_SCHEMES) and len(url) > len("tg://")


@dataclass(frozen=True)
class Button:
    """A callback (action/value), a link (`url`) or a copy-text button (`copy_text`)."""

    label: str
    action: str
    value: str | None = None
    url: str | None = None
    copy_text: str | None = None

    @property
    def kind(self) -> ButtonKind:
        if self.url is not None:
            return "url"
        if self.copy_text is not None:
            return "copy"
        return "callback"


@dataclass(frozen=True)
class Reply:
    text: str
    buttons: tuple[Button, ...] = ()
    resources: tuple[str, ...] = ()  # organisation ids shown, crisis lines first

    @property
    def plain(self) -> str:
        return plain_text(self.text)
