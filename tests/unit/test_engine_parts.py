"""The engine's small parts: session state, markup, rule matching, opening hours, fitting text to Telegram."""

from __future__ import annotations

import datetime as dt
import json

from hypothesis import given
from hypothesis import strategies as st

from bot.content.models import EscalationRule, RiskLevel, WeeklyHours
from bot.engine.reply import Button, escape_markup, markup_segments, plain_text, url_allowed, utf16_len
from bot.engine.render import PRIORITY_LIST, Section, fit_sections, truncate_markup
from bot.engine.resources import is_open
from bot.engine.rules import RuleFacts, choose_rule, concern_count, match_rule
from bot.engine.session import SessionState


# --- session ----------------------------------------------------------------------------------------


def test_session_round_trips_through_json() -> None:
    state = SessionState("es", "MX", turn=7, recent=((6, "concern"), (7, "high")), crisis_until_turn=12, crisis_until_time=99.5, last_rule="high_self", stopped=True, topic="grief", last_risk="high")
    again = SessionState.from_dict(json.loads(json.dumps(state.to_dict())), language="en", region="US")
    assert again == state


def test_session_tolerates_old_unknown_and_broken_keys() -> None:
    data = {"language": "es", "turn": "seven", "recent": [[1, "concern"], ["x", 2], [3]], "unknown": {"a": 1}, "crisis_until_time": float("nan"), "stopped": "yes"}
    state = SessionState.from_dict(data, language="en", region="US")
    assert state == SessionState("es", "US", turn=0, recent=((1, "concern"),))


def test_crisis_mode_ends_when_both_turns_and_minutes_have_passed() -> None:
    state = SessionState("en", "US").with_crisis_mode(turn_number=1, now=0.0, turns=3, minutes=10)
    assert state.in_crisis_mode(4, 0.0)  # within turns
    assert state.in_crisis_mode(9, 599.0)  # turns over, minutes not
    assert not state.in_crisis_mode(5, 600.0)
    longer = state.with_crisis_mode(turn_number=2, now=10.0, turns=1, minutes=1)
    assert longer.crisis_until_turn == 4 and longer.crisis_until_time == 600.0  # never shortened


# --- markup -----------------------------------------------------------------------------------------


def test_markup_segments_and_escapes() -> None:
    assert markup_segments("Call *988* now") == [("Call ", False), ("988", True), (" now", False)]
    name = escape_markup("Línea *4141")
    assert markup_segments(f"*{name}*") == [("Línea *4141", True)]
    assert plain_text("a *b") == "a *b"  # an unclosed star is shown, not swallowed


@given(st.text())
def test_escaped_text_reads_back_exactly(value: str) -> None:
    assert plain_text(escape_markup(value)) == value
    assert plain_text(f"*{escape_markup(value)}*") == value


@given(st.text(min_size=0, max_size=300), st.integers(min_value=1, max_value=200))
def test_truncation_respects_the_budget(value: str, budget: int) -> None:
    cut = truncate_markup(escape_markup(value) + " *bold part*", budget)
    assert utf16_len(plain_text(cut)) <= max(budget, 1)


def test_fit_sections_drops_lists_before_touching_the_reply_and_never_cuts_protected() -> None:
    lines = Section("*988* lines " * 20, protected=True)
    reply = Section("I hear you. " * 300)
    listing = Section("item " * 400, priority=PRIORITY_LIST)
    text = fit_sections([reply, lines, listing], limit=4096)
    assert utf16_len(plain_text(text)) <= 4096
    assert lines.text in text and "item" not in text


def test_only_http_https_and_tg_urls_are_allowed() -> None:
    assert url_allowed("https://988lifeline.org") and url_allowed("tg://resolve?domain=x") and url_allowed("http://a.b")
    assert not url_allowed("tel:988") and not url_allowed("sms:741741") and not url_allowed("javascript:alert(1)")
    assert Button("x", "url", url="https://a").kind == "url" and Button("x", "copy", copy_text="988").kind == "copy"


# --- rules ------------------------------------------------------------------------------------------


def test_concern_count_includes_this_turn_and_only_the_window() -> None:
    recent = ((1, "concern"), (5, "none"), (9, "high"), (10, "concern"))
    assert concern_count(recent, turn=10, within_turns=10) == 3
    assert concern_count(recent, turn=11, within_turns=10) == 2
    assert concern_count(recent, turn=10, within_turns=1) == 1


def test_first_matching_rule_wins_and_commands_only_match_command_rules() -> None:
    rules = [
        EscalationRule.model_validate({"id": "sos", "when": {"command": ["sos"]}, "do": {"reply": "sos", "crisis_lines": "first"}}),
        EscalationRule.model_validate({"id": "any_high", "when": {"risk": ["high"]}, "do": {"reply": "crisis_self", "crisis_lines": "first"}}),
        EscalationRule.model_validate({"id": "topic", "when": {"topics": ["bullying"]}, "do": {"reply": "x"}}),
        EscalationRule.model_validate({"id": "rest", "do": {"reply": "intent"}}),
    ]
    assert match_rule(rules, RuleFacts(RiskLevel.NONE, command="sos")).id == "sos"  # type: ignore[union-attr]
    assert match_rule(rules, RuleFacts(RiskLevel.NONE, command="help")) is None
    assert match_rule(rules, RuleFacts(RiskLevel.HIGH)).id == "any_high"  # type: ignore[union-attr]
    assert match_rule(rules, RuleFacts(RiskLevel.CONCERN, topics=frozenset({"bullying"}))).id == "topic"  # type: ignore[union-attr]
    assert match_rule(rules, RuleFacts(RiskLevel.NONE)).id == "rest"  # type: ignore[union-attr]


def test_yaml_can_never_weaken_a_crisis_reply() -> None:
    weak = [EscalationRule.model_validate({"id": "oops", "do": {"reply": "intent"}})]
    high = choose_rule(weak, RuleFacts(RiskLevel.HIGH))
    imminent = choose_rule(weak, RuleFacts(RiskLevel.IMMINENT))
    assert high.do.crisis_lines == "first" and not high.do.emergency_number
    assert imminent.do.crisis_lines == "first" and imminent.do.emergency_number
    assert choose_rule([], RuleFacts(RiskLevel.HIGH)).do.crisis_lines == "first"  # no rule at all: the safety net


# --- opening hours ----------------------------------------------------------------------------------


def _at(year: int, month: int, day: int, hour: int, minute: int, zone: str) -> float:
    from zoneinfo import ZoneInfo

    return dt.datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(zone)).timestamp()


def test_weekly_hours_in_the_line_s_time_zone_including_past_midnight() -> None:
    hours = WeeklyHours(timezone="America/New_York", open={"mon": ["10:00-22:00"], "fri": ["20:00-02:00"]}, label={"en": "x"})
    assert is_open(hours, _at(2026, 1, 5, 10, 0, "America/New_York"))  # Monday 10:00
    assert not is_open(hours, _at(2026, 1, 5, 22, 0, "America/New_York"))
    assert not is_open(hours, _at(2026, 1, 5, 9, 59, "America/New_York"))
    assert is_open(hours, _at(2026, 1, 10, 1, 30, "America/New_York"))  # Saturday 01:30, Friday's late shift
    assert not is_open(hours, _at(2026, 1, 10, 2, 0, "America/New_York"))
    assert not is_open(hours, _at(2026, 1, 5, 12, 0, "Asia/Tokyo"))  # Sunday 22:00 in New York
