"""The shipped content and an Understander built from it, shared by the NLU tests."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from bot.content.loader import Content, load_content
from bot.nlu.pipeline import Understander

REPO = Path(__file__).resolve().parents[2]


@lru_cache(maxsize=1)
def shipped_content() -> Content:
    return load_content(REPO)


@lru_cache(maxsize=1)
def shipped_understander() -> Understander:
    return Understander(shipped_content())
