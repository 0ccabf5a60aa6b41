"""What the person reads (YAML replies in intents/handoff.yaml) and what the staff read (operational English).

Person: live_started, live_unavailable (+ next_step + crisis lines), live_ended, live_staff_closed,
live_waiting (+ crisis lines), live_text_only. Staff: live_risk_flag and the short notices below.
"""

from __future__ import annotations

from bot.content.models import Organization
from bot.engine.engine import Engine
from bot.engine.render import ReplyBuilder
from bot.engine.reply import Reply, escape_markup
from bot.engine.resources import crisis_block

STAFF_TEXTS = {
    "intro": "Live conversation opened (referral {ref}). {shared}\n"
    "Write in this topic to answer: the person sees your messages as coming from {org}, never your account. "
    "They see nothing you write elsewhere. /close ends the conversation. "
    "Only the staff listed for {org} are passed on.",
    "person_ended": "The person ended the conversation. Nothing more is passed on from this topic.",
    "closed": "Closed. The person has been told the conversation ended.",
    "already_closed": "This conversation has already ended: the person will not see messages written here.",
    "person_unreachable": "The person can no longer be reached (they may have blocked the bot). The conversation is closed.",
    "available": "Marked available for live conversations ({count} staff available).",
    "away": "Marked away ({count} staff available). With nobody available, people are offered the referral and crisis lines instead.",
    "media_not_passed": "[The person sent a {kind}; this organisation receives text only, so it was not passed on.]",
    "risk_flag": "⚠️ {risk} risk signalled",
}


def staff_text(key: str, **values: object) -> str:
    return STAFF_TEXTS[key].format(**values)


def risk_flag(engine: Engine, risk: str, region: str) -> str:
    """The topic's flag from YAML `live_risk_flag` (the first content language: staff read operational text)."""
    language = "en" if "en" in engine.languages else engine.languages[0]
    text = engine.renderer.text("live_risk_flag", language, region, risk=risk)
    return _plain(text) if text else staff_text("risk_flag", risk=risk)


def _plain(text: str) -> str:
    return text.replace("*", "").replace("_", "")


def _steps(engine: Engine, builder: ReplyBuilder, language: str, actions: tuple[str, ...]) -> None:
    for action in actions:
        button = engine.renderer.button_for_action(action, language)
        if button is not None:
            builder.step(button)


def person_reply(
    engine: Engine, reply_id: str, language: str, region: str, now: float, *,
    org: Organization | None = None, crisis: bool = False, next_step: bool = False,
    actions: tuple[str, ...] = ("sos", "menu"),
) -> Reply:
    builder = ReplyBuilder(engine.renderer, language, region)
    name = escape_markup(org.name) if org is not None else ""
    builder.say(reply_id, name=name)
    if next_step and org is not None and org.referral is not None:
        step = engine.renderer.localized(org.referral.next_step, language, region)
        if step:
            builder.add(step)
    if crisis:
        builder.crisis_lines(crisis_block(engine.content, region, language, now), now=now)
    _steps(engine, builder, language, actions)
    return builder.build()
