"""The forum topic's title: the alias the person chose (or "Person N"), the language and the risk level.

Built only from the referral's consented payload and a counter: never a name, a username or an id.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

MAX_ALIAS_CHARS = 40
MAX_TITLE_CHARS = 128  # Telegram's limit for a topic name
_UNSAFE = re.compile(r"[\x00-\x1f\x7f@]|https?://|t\.me/", re.IGNORECASE)


def clean_alias(value: Any) -> str:
    """The alias as a short single line, without control characters, @mentions or links."""
    if not isinstance(value, str):
        return ""
    text = _UNSAFE.sub(" ", value)
    return " ".join(text.split())[:MAX_ALIAS_CHARS].strip()


def topic_title(payload: Mapping[str, Any], number: int, *, language: str, risk: str | None) -> str:
    alias = clean_alias(payload.get("alias")) or f"Person {number}"
    parts = [alias, (str(payload.get("language") or language)).upper()]
    level = payload.get("risk") or risk
    if level:
        parts.append(f"risk {level}")
    return " · ".join(parts)[:MAX_TITLE_CHARS]
