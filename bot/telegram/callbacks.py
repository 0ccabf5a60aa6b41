"""The callback data on inline buttons: one CallbackData factory, always within Telegram's 64 bytes."""

from __future__ import annotations

import logging

from aiogram.filters.callback_data import CallbackData

from bot.engine.turn import ButtonPress

log = logging.getLogger(__name__)

CALLBACK_DATA_LIMIT = 64  # bytes, Telegram's limit on callback_data


class Press(CallbackData, prefix="b", sep="|"):
    """A tapped button: the engine's action and value ("b|region|MX"). `|` because values may hold ':'."""

    action: str
    value: str | None = None


def pack_press(action: str, value: str | None) -> str | None:
    """The callback data for a button, or None when it cannot be packed within 64 bytes.

    A value that does not fit is dropped before the button is: "b|region" still opens the picker.
    """
    for candidate in (Press(action=action, value=value), Press(action=action)):
        try:
            data = candidate.pack()
        except ValueError:
            continue
        if len(data.encode("utf-8")) <= CALLBACK_DATA_LIMIT:
            if candidate.value != value:
                log.warning("button value dropped action=%s reason=too_long_or_separator", action)
            return data
    log.error("button dropped action_len=%d reason=callback_data_too_long", len(action))
    return None


def press_from(data: str | None) -> ButtonPress | None:
    """The ButtonPress in callback data, or None when it is not ours (an old or foreign format)."""
    if not data:
        return None
    try:
        press = Press.unpack(data)
    except (TypeError, ValueError):
        return None
    if not press.action:
        return None
    return ButtonPress(press.action, press.value or None)
