"""The conversation engine: one turn in, one Decision out (reply, next session state, effects). Pure: no I/O."""

from __future__ import annotations

from bot.engine.decision import Decision
from bot.engine.effects import Effect, ForgetUser, NotifyStaff, QueueReferral, SaveEvent, StopUser
from bot.engine.engine import OPTIONAL_REPLIES, REQUIRED_BUTTONS, REQUIRED_REPLIES, Engine
from bot.engine.reply import Button, Reply, escape_markup, markup_segments, plain_text, utf16_len
from bot.engine.session import SessionState
from bot.engine.turn import COMMANDS, ButtonPress, Turn

__all__ = [
    "COMMANDS",
    "OPTIONAL_REPLIES",
    "REQUIRED_BUTTONS",
    "REQUIRED_REPLIES",
    "Button",
    "ButtonPress",
    "Decision",
    "Effect",
    "Engine",
    "ForgetUser",
    "NotifyStaff",
    "QueueReferral",
    "Reply",
    "SaveEvent",
    "SessionState",
    "StopUser",
    "Turn",
    "escape_markup",
    "markup_segments",
    "plain_text",
    "utf16_len",
]
