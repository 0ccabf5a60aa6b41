"""Telegram text rules for the fake Bot API: UTF-16 lengths, entity checks, parse modes.

The parsers follow the Bot API's documented rules closely enough that text which
Telegram would reject (an unescaped ``.`` in MarkdownV2, a bare ``<`` in HTML, an
unclosed tag) is rejected here too, with Telegram's wording.  They are not a
byte-for-byte port of tdlib; see the module docstring of ``bot_api`` for what is
approximated.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = [
    "ENTITY_TYPES",
    "EntityError",
    "utf16_len",
    "parse_html",
    "parse_markdown",
    "parse_markdown_v2",
    "parse_text",
    "validate_entities",
    "strip_text",
    "command_entities",
]

ENTITY_TYPES = frozenset(
    {
        "mention",
        "hashtag",
        "cashtag",
        "bot_command",
        "url",
        "email",
        "phone_number",
        "bold",
        "italic",
        "underline",
        "strikethrough",
        "spoiler",
        "blockquote",
        "expandable_blockquote",
        "code",
        "pre",
        "text_link",
        "text_mention",
        "custom_emoji",
        "date_time",
    }
)


class EntityError(ValueError):
    """Raised with the text Telegram puts after "Bad Request: can't parse entities: "."""


def utf16_len(text: str) -> int:
    """Length of ``text`` in UTF-16 code units, the unit Telegram counts in."""
    return len(text.encode("utf-16-le")) // 2


def _byte_offset(src: str, index: int) -> int:
    return len(src[:index].encode("utf-8"))


class _Builder:
    """Accumulates output text and tracks the UTF-16 position."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.pos = 0
        self.entities: list[dict[str, Any]] = []

    def add(self, s: str) -> None:
        self.parts.append(s)
        self.pos += utf16_len(s)

    def entity(self, type_: str, start: int, **extra: Any) -> None:
        length = self.pos - start
        if length <= 0:  # Telegram drops empty entities
            return
        ent: dict[str, Any] = {"offset": start, "length": length, "type": type_}
        ent.update({k: v for k, v in extra.items() if v is not None})
        self.entities.append(ent)

    def result(self) -> tuple[str, list[dict[str, Any]]]:
        # Nothing may be nested inside code/pre (Telegram drops such entities); the same range is kept.
        blocks = [e for e in self.entities if e["type"] in ("code", "pre")]
        kept = [
            e
            for e in self.entities
            if not any(
                b is not e
                and b["offset"] <= e["offset"]
                and e["offset"] + e["length"] <= b["offset"] + b["length"]
                and (b["length"] > e["length"] or (e["type"] == "code" and b["type"] == "pre"))
                for b in blocks
            )
        ]
        ents = sorted(kept, key=lambda e: (e["offset"], -e["length"]))
        return "".join(self.parts), ents


# --------------------------------------------------------------------------- HTML

_HTML_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_HTML_ENTITY = re.compile(r"&(lt|gt|amp|quot|#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6});")
_HTML_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_HTML_END = re.compile(r"</([a-zA-Z][a-zA-Z0-9-]*)\s*>")
_HTML_START = re.compile(
    r"<([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[a-zA-Z][a-zA-Z0-9-]*(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s>\"']+))?)*)\s*/?>"
)
_HTML_ATTR = re.compile(r"([a-zA-Z][a-zA-Z0-9-]*)(?:\s*=\s*(\"[^\"]*\"|'[^']*'|[^\s>\"']+))?")


def _html_unescape(value: str) -> str:
    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name in _HTML_NAMED:
            return _HTML_NAMED[name]
        code = int(name[2:], 16) if name[1:2] in "xX" else int(name[1:])
        return chr(code) if 0 < code < 0x110000 else m.group(0)

    return _HTML_ENTITY.sub(sub, value)


def parse_html(src: str) -> tuple[str, list[dict[str, Any]]]:
    out = _Builder()
    stack: list[tuple[str, int, dict[str, str]]] = []
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if c == "&":
            m = _HTML_ENTITY.match(src, i)
            if m:
                out.add(_html_unescape(m.group(0)))
                i = m.end()
                continue
            out.add("&")
            i += 1
            continue
        if c != "<":
            j = i
            while j < n and src[j] not in "<&":
                j += 1
            out.add(src[i:j])
            i = j
            continue
        if src.startswith("</", i):
            m = _HTML_END.match(src, i)
            if not m or not stack:
                raise EntityError(f"Unexpected end tag at byte offset {_byte_offset(src, i)}")
            tag = m.group(1).lower()
            open_tag, start, attrs = stack[-1]
            if tag != open_tag:
                raise EntityError(
                    f'Unmatched end tag at byte offset {_byte_offset(src, i)}, '
                    f'expected "</{open_tag}>", found "</{tag}>"'
                )
            stack.pop()
            _html_close(out, open_tag, start, attrs, stack)
            i = m.end()
            continue
        m = _HTML_START.match(src, i)
        if not m:
            name = re.match(r"<([^\s>/]*)", src[i:]).group(1)  # type: ignore[union-attr]
            raise EntityError(f'Unsupported start tag "{name}" at byte offset {_byte_offset(src, i)}')
        tag = m.group(1).lower()
        attrs = {
            a.group(1).lower(): _html_unescape((a.group(2) or "").strip("\"'"))
            for a in _HTML_ATTR.finditer(m.group(2) or "")
        }
        if tag not in _HTML_TAGS or (tag == "span" and attrs.get("class") != "tg-spoiler"):
            raise EntityError(f'Unsupported start tag "{tag}" at byte offset {_byte_offset(src, i)}')
        stack.append((tag, out.pos, attrs))
        i = m.end()
    if stack:
        raise EntityError(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    return out.result()


def _html_close(
    out: _Builder, tag: str, start: int, attrs: dict[str, str], stack: list[tuple[str, int, dict[str, str]]]
) -> None:
    kind = _HTML_TAGS[tag]
    if kind == "text_link":
        href = attrs.get("href", "")
        if not href:
            return  # <a> without href is plain text in Telegram
        m = re.fullmatch(r"tg://user\?id=(\d+)", href)
        if m:
            out.entity("text_mention", start, user={"id": int(m.group(1)), "is_bot": False, "first_name": "User"})
        else:
            out.entity("text_link", start, url=href)
    elif kind == "code":
        lang = attrs.get("class", "")
        if stack and stack[-1][0] == "pre":
            if lang.startswith("language-"):
                stack[-1][2]["language"] = lang[len("language-") :]
            return  # <pre><code> is one pre entity
        out.entity("code", start)
    elif kind == "pre":
        out.entity("pre", start, language=attrs.get("language"))
    elif kind == "blockquote":
        out.entity("expandable_blockquote" if "expandable" in attrs else "blockquote", start)
    elif kind == "custom_emoji":
        emoji_id = attrs.get("emoji-id")
        if emoji_id:
            out.entity("custom_emoji", start, custom_emoji_id=emoji_id)
    else:
        out.entity(kind, start)


# --------------------------------------------------------------------- MarkdownV2

_MD2_RESERVED = set("_*[]()~`>#+-=|{}.!")
_MD2_NAMES = {
    "bold": "Bold",
    "italic": "Italic",
    "underline": "Underline",
    "strikethrough": "Strikethrough",
    "spoiler": "Spoiler",
    "text_link": "TextUrl",
    "custom_emoji": "CustomEmoji",
}


def parse_markdown_v2(src: str) -> tuple[str, list[dict[str, Any]]]:
    out = _Builder()
    stack: list[tuple[str, int, int]] = []  # (type, start utf16, source index)
    quote_start: int | None = None
    i, n = 0, len(src)
    line_start = True
    while i < n:
        c = src[i]
        if line_start and c == ">":
            if quote_start is None:
                quote_start = out.pos
            i += 1
            line_start = False
            continue
        line_start = False
        if c == "\r":  # ignored; aiogram uses it to separate "_" from "__"
            i += 1
            continue
        if c == "\\" and i + 1 < n and 0 < ord(src[i + 1]) <= 126:
            out.add(src[i + 1])
            i += 2
            continue
        if c == "\n":
            if quote_start is not None and not src.startswith(">", i + 1):
                out.entity("blockquote", quote_start)
                quote_start = None
            out.add("\n")
            line_start = True
            i += 1
            continue
        if c == "`":
            i = _md2_code(src, i, out)
            continue
        top = stack[-1][0] if stack else None
        kind: str | None = None
        width = 1
        if c == "*":
            kind = "bold"
        elif c == "_":
            if src.startswith("__", i):
                kind, width = "underline", 2
            else:
                kind = "italic"
        elif c == "~":
            kind = "strikethrough"
        elif c == "|" and src.startswith("||", i):
            kind, width = "spoiler", 2
        elif c == "[" or (c == "!" and src.startswith("![", i)):
            kind = "custom_emoji" if c == "!" else "text_link"
            stack.append((kind, out.pos, i))
            i += 2 if c == "!" else 1
            continue
        elif c == "]" and top in ("text_link", "custom_emoji"):
            _, start, _idx = stack.pop()
            i = _md2_link_end(src, i, out, top, start)
            continue
        if kind is not None:
            if top == kind:
                _, start, _idx = stack.pop()
                out.entity(kind, start)
            else:
                stack.append((kind, out.pos, i))
            i += width
            continue
        if c in _MD2_RESERVED:
            raise EntityError(f"Character '{c}' is reserved and must be escaped with the preceding '\\'")
        out.add(c)
        i += 1
    if stack:
        kind, _start, idx = stack[-1]
        raise EntityError(f"Can't find end of {_MD2_NAMES[kind]} entity at byte offset {_byte_offset(src, idx)}")
    if quote_start is not None:
        out.entity("blockquote", quote_start)
    return out.result()


def _md2_code(src: str, i: int, out: _Builder) -> int:
    pre = src.startswith("```", i)
    fence = "```" if pre else "`"
    j = i + len(fence)
    language = None
    if pre:
        nl = src.find("\n", j)
        first = src[j:nl] if nl != -1 else ""
        if nl != -1 and first and not re.search(r"\s|`", first):
            language = first
            j = nl + 1
    start = out.pos
    buf: list[str] = []
    while j < len(src):
        if src[j] == "\\" and j + 1 < len(src) and 0 < ord(src[j + 1]) <= 126:
            buf.append(src[j + 1])
            j += 2
            continue
        if src.startswith(fence, j):
            out.add("".join(buf))
            out.entity("pre" if pre else "code", start, language=language)
            return j + len(fence)
        buf.append(src[j])
        j += 1
    name = "Pre" if pre else "Code"
    raise EntityError(f"Can't find end of {name} entity at byte offset {_byte_offset(src, i)}")


def _md2_link_end(src: str, i: int, out: _Builder, kind: str, start: int) -> int:
    j = i + 1
    if not src.startswith("(", j):
        if kind == "text_link":
            # "[text]" without "(url)": kept as plain text (no entity)
            return j
        raise EntityError(f"Can't find end of a custom emoji at byte offset {_byte_offset(src, i)}")
    j += 1
    url: list[str] = []
    while j < len(src) and src[j] != ")":
        if src[j] == "\\" and j + 1 < len(src) and 0 < ord(src[j + 1]) <= 126:
            url.append(src[j + 1])
            j += 2
            continue
        url.append(src[j])
        j += 1
    if j >= len(src):
        raise EntityError(f"Can't find end of a URL at byte offset {_byte_offset(src, i + 1)}")
    target = "".join(url)
    if kind == "custom_emoji":
        m = re.fullmatch(r"tg://emoji\?id=(\d+)", target)
        if not m:
            raise EntityError("Custom emoji URL must have scheme tg")
        out.entity("custom_emoji", start, custom_emoji_id=m.group(1))
    elif target:
        m = re.fullmatch(r"tg://user\?id=(\d+)", target)
        if m:
            out.entity("text_mention", start, user={"id": int(m.group(1)), "is_bot": False, "first_name": "User"})
        else:
            out.entity("text_link", start, url=target)
    return j + 1


# ------------------------------------------------------------------ legacy Markdown

_MD1 = {"*": "bold", "_": "italic"}


def parse_markdown(src: str) -> tuple[str, list[dict[str, Any]]]:
    out = _Builder()
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if c == "\\" and i + 1 < n and src[i + 1] in "_*`[":
            out.add(src[i + 1])
            i += 2
            continue
        if c in _MD1 or c == "`":
            fence = "```" if src.startswith("```", i) else c
            end = src.find(fence, i + len(fence))
            if end == -1:
                raise EntityError(
                    f"Can't find end of the entity starting at byte offset {_byte_offset(src, i)}"
                )
            inner = src[i + len(fence) : end]
            start = out.pos
            language = None
            if fence == "```":
                nl = inner.find("\n")
                if nl > 0 and not re.search(r"\s", inner[:nl]):
                    language, inner = inner[:nl], inner[nl + 1 :]
            out.add(inner)
            kind = "pre" if fence == "```" else "code" if c == "`" else _MD1[c]
            out.entity(kind, start, language=language)
            i = end + len(fence)
            continue
        if c == "[":
            m = re.compile(r"\[([^\]]*)\]\(([^)]*)\)").match(src, i)
            if not m:
                raise EntityError(
                    f"Can't find end of the entity starting at byte offset {_byte_offset(src, i)}"
                )
            start = out.pos
            out.add(m.group(1))
            if m.group(2):
                out.entity("text_link", start, url=m.group(2))
            i = m.end()
            continue
        out.add(c)
        i += 1
    return out.result()


PARSERS = {"html": parse_html, "markdownv2": parse_markdown_v2, "markdown": parse_markdown}


def parse_text(text: str, parse_mode: str) -> tuple[str, list[dict[str, Any]]]:
    """Parse ``text`` with a Bot API parse_mode. Raises ``KeyError`` for an unknown mode."""
    return PARSERS[parse_mode.lower()](text)


# ------------------------------------------------------------------ entity checks


def validate_entities(text: str, entities: Any) -> list[dict[str, Any]]:
    """Check explicit entities the way a strict Bot API would; return them normalised."""
    if not isinstance(entities, list):
        raise EntityError("Field \"entities\" must be of type Array")
    total = utf16_len(text)
    result: list[dict[str, Any]] = []
    for index, ent in enumerate(entities):
        if not isinstance(ent, dict):
            raise EntityError(f"entity {index} must be an Object")
        kind = ent.get("type")
        if not isinstance(kind, str):
            raise EntityError('Field "type" must be of type String')
        if kind not in ENTITY_TYPES:
            raise EntityError(f'Unsupported entity type "{kind}"')
        offset, length = ent.get("offset"), ent.get("length")
        if not isinstance(offset, int) or isinstance(offset, bool):
            raise EntityError('Field "offset" must be of type Number')
        if not isinstance(length, int) or isinstance(length, bool):
            raise EntityError('Field "length" must be of type Number')
        if offset < 0 or length <= 0 or offset + length > total:
            raise EntityError(
                f"entity {index} ({kind}) at offset {offset} with length {length} is outside "
                f"the text of {total} UTF-16 code units"
            )
        if kind == "text_link" and not ent.get("url"):
            raise EntityError('Field "url" must be of type String')
        if kind == "text_mention" and not isinstance(ent.get("user"), dict):
            raise EntityError('Field "user" must be of type Object')
        if kind == "custom_emoji" and not ent.get("custom_emoji_id"):
            raise EntityError('Field "custom_emoji_id" must be of type String')
        result.append({k: v for k, v in ent.items() if v is not None})
    return result


def _utf16_index(text: str, index: int) -> int:
    return utf16_len(text[:index])


def strip_text(text: str, entities: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """Trim leading/trailing whitespace as Telegram does, shifting and clipping entities."""
    stripped = text.strip()
    if stripped == text:
        return text, entities
    lead = _utf16_index(text, len(text) - len(text.lstrip()))
    new_len = utf16_len(stripped)
    result = []
    for ent in entities:
        start = max(ent["offset"] - lead, 0)
        end = min(ent["offset"] + ent["length"] - lead, new_len)
        if end > start:
            result.append({**ent, "offset": start, "length": end - start})
    return stripped, result


_COMMAND = re.compile(r"(?<![\w/])/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?")


def command_entities(text: str) -> list[dict[str, Any]]:
    """bot_command entities that Telegram clients attach to user messages."""
    return [
        {"offset": _utf16_index(text, m.start()), "length": utf16_len(m.group(0)), "type": "bot_command"}
        for m in _COMMAND.finditer(text)
    ]
