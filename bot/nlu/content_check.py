"""Checks of the content that need the understanding code: patterns compile, `tests:` blocks pass."""

from __future__ import annotations

from bot.content.loader import Content, Problem
from bot.content.models import RiskLevel
from bot.nlu.patterns import PatternCompiler, PatternError
from bot.nlu.pipeline import Understander

ESCALATION = "intents/escalation.yaml"


def pattern_problems(content: Content, understander: Understander | None = None) -> list[Problem]:
    """Every pattern that does not compile, with its file and line."""
    problems: list[Problem] = []
    esc = content.escalation
    source = content.files[ESCALATION]
    tokens = understander._vocabulary_tokens if understander else None  # noqa: SLF001
    if tokens is None:
        return problems
    compiler = PatternCompiler(esc.terms, tokens)
    for section in ("signals", "modifiers", "masks"):
        for i, item in enumerate(getattr(esc, section)):
            for j, pattern in enumerate(item.patterns):
                try:
                    compiler.compile(item.id, pattern)
                except PatternError as error:
                    problems.append(Problem(ESCALATION, source.line_of((section, i, "patterns", j)), str(error)))
    for located in content.intents:
        shown = next(name for name, file in content.files.items() if file is located.file)
        for language, words in located.intent.keywords.items():
            for j, keyword in enumerate(words):
                try:
                    compiler.compile(located.intent.id, keyword)
                except PatternError as error:
                    problems.append(Problem(shown, located.file.line_of(("intents", located.index, "keywords", language, j)), str(error)))
    return problems


def test_problems(content: Content, understander: Understander) -> tuple[int, list[Problem]]:
    """Run every `tests:` block; return how many ran and the failures as `path:line: expected X, got Y`."""
    problems: list[Problem] = []
    count = 0
    source = content.files[ESCALATION]
    for i, row in enumerate(content.escalation.tests):
        count += 1
        result = understander.understand(row.text)
        expected = RiskLevel.parse(row.risk)
        got = result.risk
        if got.level != expected or (row.about is not None and got.about != row.about):
            want = f"{row.risk}" + (f"/{row.about}" if row.about else "")
            have = f"{got.level.label}" + (f"/{got.about}" if row.about else "")
            problems.append(Problem(ESCALATION, source.line_of(("tests", i)), f"expected {want}, got {have} ({', '.join(got.signals) or 'no signals'})"))
    for located in content.intents:
        shown = next(name for name, file in content.files.items() if file is located.file)
        intent = located.intent
        for j, text in enumerate(intent.tests.match):
            count += 1
            got_id = understander.understand(text).intent.intent_id
            if got_id != intent.id:
                problems.append(Problem(shown, located.file.line_of(("intents", located.index, "tests", "match", j)), f"expected intent {intent.id}, got {got_id}"))
        for j, text in enumerate(intent.tests.no_match):
            count += 1
            got_id = understander.understand(text).intent.intent_id
            if got_id == intent.id:
                problems.append(Problem(shown, located.file.line_of(("intents", located.index, "tests", "no_match", j)), f"expected not {intent.id}, got {got_id}"))
    return count, problems
