"""The layering DESIGN.md draws: content and nlu are pure; the engine never touches I/O or aiogram."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

BOT = Path(__file__).resolve().parents[2] / "bot"

FORBIDDEN = {
    "content": ("bot.nlu", "bot.engine", "bot.store", "bot.telegram", "bot.referrals", "bot.app", "aiogram", "aiohttp"),
    "nlu": ("bot.engine", "bot.store", "bot.telegram", "bot.referrals", "bot.app", "aiogram", "aiohttp", "asyncio"),
    "engine": ("bot.store", "bot.telegram", "bot.referrals", "bot.app", "aiogram", "aiohttp", "asyncio", "sqlite3", "aiosqlite"),
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_stay_in_their_layer(package):
    offenders = []
    for path in sorted((BOT / package).rglob("*.py")):
        for name in _imports(path):
            if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN[package]):
                offenders.append(f"{path.relative_to(BOT.parent)} imports {name}")
    assert not offenders, "\n".join(offenders)
