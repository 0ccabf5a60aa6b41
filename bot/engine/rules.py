"""Pick the escalation rule for a turn: the rules of escalation.yaml in order, the first that holds wins."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.content.models import EscalationRule, RiskLevel, RuleDo

DEFAULT_RULE_ID = "default"


@dataclass(frozen=True)
class RuleFacts:
    """Everything a rule's `when` may look at, for one turn."""

    risk: RiskLevel
    about: str = "self"
    denial: bool = False
    intent: str | None = None
    command: str | None = None
    in_crisis_mode: bool = False
    turn: int = 0
    recent: tuple[tuple[int, str], ...] = ()  # (turn, risk name), this turn included
    topics: frozenset[str] = frozenset()  # topics of the risk signals and of the matched intent


def concern_count(recent: Sequence[tuple[int, str]], turn: int, within_turns: int) -> int:
    """How many of the messages in the last `within_turns` turns (this one included) were concern or higher."""
    first = turn - within_turns + 1
    count = 0
    for number, level in recent:
        if number < first or number > turn:
            continue
        try:
            if RiskLevel.parse(level) >= RiskLevel.CONCERN:
                count += 1
        except KeyError:
            continue
    return count


def rule_holds(rule: EscalationRule, facts: RuleFacts) -> bool:
    when = rule.when
    if when.command is not None and facts.command not in when.command:
        return False
    if when.command is None and facts.command is not None:
        return False  # rules without `command` are about messages, not commands
    if when.risk is not None and facts.risk.label not in when.risk:
        return False
    if when.about is not None and facts.about != when.about:
        return False
    if when.denial is not None and facts.denial != when.denial:
        return False
    if when.intent is not None and facts.intent not in when.intent:
        return False
    if when.in_crisis_mode is not None and facts.in_crisis_mode != when.in_crisis_mode:
        return False
    if when.topics is not None and not facts.topics.intersection(when.topics):
        return False
    if when.concern_count is not None:
        spec = when.concern_count
        if concern_count(facts.recent, facts.turn, spec.within_turns) < spec.at_least:
            return False
    return True


def default_rule(risk: RiskLevel) -> EscalationRule:
    """What to do when no rule holds (content should end with a catch-all; this is the safety net)."""
    if risk >= RiskLevel.HIGH:
        do = RuleDo(
            reply="intent",
            fallback_reply="crisis_self",
            crisis_lines="first",
            emergency_number=risk >= RiskLevel.IMMINENT,
        )
    elif risk == RiskLevel.CONCERN:
        do = RuleDo(reply="intent", fallback_reply="concern_ack", crisis_lines="footer")
    else:
        do = RuleDo(reply="intent", fallback_reply="fallback")
    return EscalationRule(id=DEFAULT_RULE_ID, do=do)


def match_rule(rules: Sequence[EscalationRule], facts: RuleFacts) -> EscalationRule | None:
    """The first rule whose `when` holds, or None."""
    for rule in rules:
        if rule_holds(rule, facts):
            return rule
    return None


def choose_rule(rules: Sequence[EscalationRule], facts: RuleFacts) -> EscalationRule:
    """The first rule that holds, or the safety-net default; never weaker than the risk demands."""
    rule = match_rule(rules, facts) or default_rule(facts.risk)
    return enforce_safety(rule, facts.risk)


def enforce_safety(rule: EscalationRule, risk: RiskLevel) -> EscalationRule:
    """Risk >= high always shows crisis lines first, imminent always the emergency number: whatever the YAML says."""
    do = rule.do
    updates: dict[str, object] = {}
    if risk >= RiskLevel.HIGH and do.crisis_lines != "first":
        updates["crisis_lines"] = "first"
    if risk >= RiskLevel.IMMINENT and not do.emergency_number:
        updates["emergency_number"] = True
    if risk == RiskLevel.CONCERN and do.crisis_lines == "none":
        updates["crisis_lines"] = "footer"
    if not updates:
        return rule
    return rule.model_copy(update={"do": do.model_copy(update=updates)})
