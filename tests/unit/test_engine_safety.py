"""The safety invariants over every region, language, risk level, command and button of the shipped content."""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from bot.content.loader import Content, load_content
from bot.content.models import WeeklyHours
from bot.engine import ButtonPress, Decision, Engine, SessionState, Turn
from bot.engine.reply import ALLOWED_URL_SCHEMES, TELEGRAM_TEXT_LIMIT, utf16_len
from bot.engine.turn import COMMANDS
from tests.unit.engine_support import SHIPPED, T0, ScriptedUnderstander, understanding


@pytest.fixture(scope="module")
def content() -> Content:
    return load_content(SHIPPED)


def org_kind(content: Content, org_id: str) -> str:
    return next(o.kind for o in content.resources.organizations if o.id == org_id)


def assert_crisis_reply(decision: Decision, content: Content, region: str, *, imminent: bool) -> None:
    reply = decision.reply
    shown = [o for o in content.resources.organizations if o.id in reply.resources]
    region_has_line = any(o.kind == "crisis_line" and region in o.regions for o in content.resources.organizations)
    if region_has_line:
        assert any(o.kind == "crisis_line" and region in o.regions for o in shown), (region, reply.resources)
        assert org_kind(content, reply.resources[0]) == "crisis_line", "crisis lines come first"
    directory = next(o for o in content.resources.organizations if o.kind == "directory")
    assert directory.id in reply.resources
    assert any(b.kind == "url" and b.url == directory.contacts[0].url for b in reply.buttons), "directory button"
    not_in_region = content.buttons["not_in_region"]
    assert any(b.action == not_in_region.action and b.value is None and b.label in not_in_region.label.values() for b in reply.buttons)
    if region_has_line:  # else the directory button is the one tap
        assert any(b.kind == "copy" for b in reply.buttons), "a copy-text button for a number"
    emergency = next((e for e in content.resources.emergency_numbers if e.region == region), None)
    if imminent and emergency is not None:
        assert emergency.number in reply.plain.splitlines()[0], "the emergency number at the very top"
        assert reply.buttons[0].copy_text == emergency.number


def assert_well_formed(decision: Decision) -> None:
    reply = decision.reply
    assert reply.text.strip()
    assert utf16_len(reply.plain) <= TELEGRAM_TEXT_LIMIT
    for button in reply.buttons:
        assert button.label.strip()
        if button.url is not None:
            assert button.url.startswith(ALLOWED_URL_SCHEMES), button.url
        if button.kind == "callback":
            data = f"{button.action}:{button.value or ''}"
            assert 1 <= len(data.encode()) <= 64, data
    assert any(b.kind == "callback" for b in reply.buttons), "never a dead end"


@pytest.mark.parametrize("risk", ["high", "imminent"])
def test_every_crisis_reply_in_every_region_and_language(content: Content, risk: str) -> None:
    regions = [r.id for r in content.resources.regions] + ["FR"]  # FR: a region without its own line
    for region, language, about in itertools.product(regions, content.languages, ("self", "other")):
        heard = understanding(risk, about=about, language=language, topics=("suicide",))
        engine = Engine(content, ScriptedUnderstander({"m": heard}))
        decision = engine.handle(SessionState(language, region), Turn("u", now=T0, text="m"), default_region="US")
        assert decision.error is None
        assert_crisis_reply(decision, content, region, imminent=risk == "imminent")
        assert_well_formed(decision)


def test_sos_and_the_error_fallback_in_every_region_and_language(content: Content) -> None:
    regions = [r.id for r in content.resources.regions] + ["FR"]
    for region, language in itertools.product(regions, content.languages):
        engine = Engine(content, ScriptedUnderstander())
        sos = engine.handle(SessionState(language, region), Turn("u", now=T0, command="sos"), default_region="US")
        assert_crisis_reply(sos, content, region, imminent=True)
        fallback = engine.safe_fallback(language, region)
        assert fallback.resources and any(b.kind == "copy" for b in fallback.buttons) or region == "FR"
        assert any(b.url and "findahelpline" in b.url for b in fallback.buttons)


def test_spanish_speakers_get_spanish_lines_in_us_es_mx(content: Content) -> None:
    for region in ("US", "ES", "MX"):
        engine = Engine(content, ScriptedUnderstander({"m": understanding("high")}))
        decision = engine.handle(SessionState("es", region), Turn("u", now=T0, text="m"), default_region="US")
        lines = [o for o in content.resources.organizations if o.id in decision.reply.resources and o.kind == "crisis_line"]
        assert lines and all("es" in o.languages for o in lines), (region, decision.reply.resources)


def test_every_command_and_button_is_well_formed_and_never_a_dead_end(content: Content) -> None:
    engine = Engine(content, ScriptedUnderstander())
    presses = [ButtonPress(b.action, b.value) for b in content.buttons.values()]
    presses += [ButtonPress("topic", t.id) for t in content.resources.topics]
    presses += [ButtonPress("region", r.id) for r in content.resources.regions] + [ButtonPress("region", "ZZ"), ButtonPress("nope", "x")]
    for language in content.languages:
        for crisis in (False, True):
            session = SessionState(language, "US", turn=1, crisis_until_turn=9 if crisis else 0)
            turns = [Turn("u", now=T0, command=c) for c in sorted(COMMANDS)] + [Turn("u", now=T0, command="unknown")]
            turns += [Turn("u", now=T0, button=p) for p in presses] + [Turn("u", now=T0)]
            turns += [Turn("u", now=T0, command="start", argument=a) for a in ("crisis", "topic-anxiety", "topic-nope", "x" * 64)]
            for turn in turns:
                decision = engine.handle(session, turn, default_region="US")
                assert decision.error is None, (turn, decision.error)
                assert_well_formed(decision)
                if crisis:
                    assert any(org_kind(content, r) == "crisis_line" for r in decision.reply.resources), turn


def test_a_huge_reply_is_cut_but_never_its_crisis_lines(content: Content) -> None:
    huge = {"en": "I hear you. " * 800, "es": "Te escucho. " * 800}
    bigger = dataclasses.replace(content, replies={**content.replies, "crisis_self": huge})
    engine = Engine(bigger, ScriptedUnderstander({"m": understanding("high")}))
    decision = engine.handle(SessionState("en", "US"), Turn("u", now=T0, text="m"), default_region="US")
    normal = Engine(content, ScriptedUnderstander({"m": understanding("high")})).handle(
        SessionState("en", "US"), Turn("u", now=T0, text="m"), default_region="US"
    )
    assert utf16_len(decision.reply.plain) <= TELEGRAM_TEXT_LIMIT
    lines_block = normal.reply.text.split("\n\n", 1)[1]
    assert lines_block in decision.reply.text
    assert decision.reply.resources == normal.reply.resources


def test_a_line_closed_now_is_labelled_and_never_alone(content: Content) -> None:
    # Make the only line of a region keep office hours; at this moment (Thursday 10:00 UTC) it is closed.
    region = "ES"
    line = next(o for o in content.resources.organizations if o.kind == "crisis_line" and region in o.regions)
    hours = WeeklyHours(timezone="America/Los_Angeles", open={"mon": ["10:00-18:00"]}, label={"en": "Mondays", "es": "lunes"})
    closed = line.model_copy(update={"hours": hours})
    others = [o for o in content.resources.organizations if not (o.kind == "crisis_line" and region in o.regions)]
    resources = content.resources.model_copy(update={"organizations": [closed, *others]})
    changed = dataclasses.replace(content, resources=resources)
    engine = Engine(changed, ScriptedUnderstander({"m": understanding("high")}))
    decision = engine.handle(SessionState("es", region), Turn("u", now=T0, text="m"), default_region="US")
    assert content.replies["closed_now"]["es"] in decision.reply.plain
    emergency = next(e for e in content.resources.emergency_numbers if e.region == region)
    assert emergency.number in decision.reply.plain  # not the only way shown
    assert any(b.url and "findahelpline" in b.url for b in decision.reply.buttons)


def test_an_exception_inside_the_engine_still_yields_crisis_lines(content: Content) -> None:
    class Broken:
        def understand(self, text: str) -> object:
            raise RuntimeError("boom")

    engine = Engine(content, Broken())  # type: ignore[arg-type]
    for language in content.languages:
        decision = engine.handle(SessionState(language, "US"), Turn("u", now=T0, text="I want to die"), default_region="US")
        assert isinstance(decision.error, RuntimeError)
        assert decision.rule == "internal_error"
        assert content.replies["internal_error"][language].split(".")[0] in decision.reply.plain
        assert_crisis_reply(decision, content, "US", imminent=False)


def test_a_failure_while_rendering_falls_back_too(content: Content, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = Engine(content, ScriptedUnderstander({"m": understanding("high")}))

    def explode(*args: object, **kwargs: object) -> None:
        raise KeyError("render")

    monkeypatch.setattr("bot.engine.engine.crisis_block", explode)
    decision = engine.handle(None, Turn("u", now=T0, text="m"), default_region="GB")
    assert isinstance(decision.error, KeyError)
    assert any(o.kind == "crisis_line" and "GB" in o.regions for o in content.resources.organizations if o.id in decision.reply.resources)
