"""Conversations as data: each turn in, the rule, risk and first resource kind out (shipped content, scripted risk)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from tests.unit.engine_support import SHIPPED, T0, ScriptedUnderstander, understanding

from bot.content.loader import Content, load_content
from bot.engine import ButtonPress, Decision, Engine, ForgetUser, NotifyStaff, SaveEvent, SessionState, StopUser, Turn
from bot.engine.reply import plain_text

MINUTE = 60.0


@pytest.fixture(scope="module")
def content() -> Content:
    return load_content(SHIPPED)


@dataclass
class Step:
    """One turn of a scripted conversation and what must come out of it."""

    turn: dict[str, Any]
    rule: str | None = None
    risk: str = "none"
    first_kind: str | None = None  # kind of the organisation listed first in the reply (None: no check)
    heard: Any = None  # the Understanding the scripted understander returns for this text
    after: float = 0.0  # seconds since the previous turn
    check: Callable[[Decision, Content], None] | None = None
    region: str = "US"


@dataclass
class Conversation:
    name: str
    steps: list[Step]
    hint: str | None = None
    region: str = "US"
    extra: dict[str, Any] = field(default_factory=dict)


def kind_of(content: Content, org_id: str) -> str:
    return next(o.kind for o in content.resources.organizations if o.id == org_id)


def org(content: Content, org_id: str):  # type: ignore[no-untyped-def]
    return next(o for o in content.resources.organizations if o.id == org_id)


def has_lines_for(region: str) -> Callable[[Decision, Content], None]:
    def check(decision: Decision, content: Content) -> None:
        lines = [r for r in decision.reply.resources if kind_of(content, r) == "crisis_line"]
        assert lines, "no crisis line shown"
        assert all(region in org(content, r).regions for r in lines), lines

    return check


def pinned(decision: Decision, content: Content) -> None:
    assert decision.reply.resources and kind_of(content, decision.reply.resources[0]) == "crisis_line"
    assert any(b.url and "findahelpline" in b.url for b in decision.reply.buttons)


def spanish_us_lines(decision: Decision, content: Content) -> None:
    assert "988-lifeline" in decision.reply.resources
    text = decision.reply.plain
    assert content.replies["crisis_self"]["es"].split(".")[0] in text  # answered in Spanish
    assert "AYUDA" in text  # 988's Spanish text option
    assert "Marca 2" in text or "marca 2" in text.lower()  # 988's Spanish phone option
    assert "Call" not in text


def helping_resources(decision: Decision, content: Content) -> None:
    later = decision.reply.resources[1:]
    assert any("helping_someone" in org(content, r).topics and kind_of(content, r) != "directory" for r in later) or any(
        "helping_someone" in org(content, r).topics for r in decision.reply.resources
    )
    assert plain_text(content.replies["crisis_other"]["en"]) in decision.reply.plain


def forgotten(decision: Decision, content: Content) -> None:
    assert ForgetUser() in decision.effects
    assert not any(isinstance(e, SaveEvent) for e in decision.effects)  # nothing recorded in the forget turn
    assert decision.session.turn == 0 and decision.session.recent == () and decision.session.crisis_until_turn == 0


def emergency_first(decision: Decision, content: Content) -> None:
    emergency = next(e for e in content.resources.emergency_numbers if e.region == "US")
    first_line = decision.reply.plain.splitlines()[0]
    assert emergency.number in first_line
    assert decision.reply.buttons[0].copy_text == emergency.number
    assert any(isinstance(e, NotifyStaff) for e in decision.effects)


def not_pinned(decision: Decision, content: Content) -> None:
    assert not any(kind_of(content, r) == "crisis_line" for r in decision.reply.resources)


HIGH = understanding("high", topics=("suicide",))
CONCERN = understanding("concern")
NONE = understanding("none")

CONVERSATIONS = [
    Conversation(
        "crisis then thanks",
        [
            Step({"text": "i want to die"}, "high_self", "high", "crisis_line", HIGH),
            Step({"text": "thanks"}, "crisis_mode_pinned", "none", "crisis_line", understanding(intent="thanks"), check=pinned),
        ],
    ),
    Conversation(
        "repeated concern",
        [
            Step({"text": "c1"}, "concern", "concern", None, CONCERN),
            Step({"text": "n1"}, "intent", "none", None, NONE),
            Step({"text": "c2"}, "concern", "concern", None, CONCERN),
            Step({"text": "c3"}, "concern_repeated", "concern", None, CONCERN),
        ],
    ),
    Conversation(
        "concern spread over more than ten turns is not repeated",
        [
            Step({"text": "c1"}, "concern", "concern", None, CONCERN),
            *[Step({"text": f"n{i}"}, "intent", "none", None, NONE) for i in range(9)],
            Step({"text": "c2"}, "concern", "concern", None, CONCERN),
            Step({"text": "c3"}, "concern", "concern", None, CONCERN),
            Step({"text": "c4"}, "concern_repeated", "concern", None, CONCERN),
        ],
    ),
    Conversation(
        "someone else",
        [
            Step(
                {"text": "my friend wants to kill herself"},
                "high_other",
                "high",
                "crisis_line",
                understanding("high", about="other", topics=("suicide",)),
                check=helping_resources,
            )
        ],
    ),
    Conversation(
        "spanish",
        [Step({"text": "ya no quiero vivir"}, "high_self", "high", "crisis_line", understanding("high", language="es"), check=spanish_us_lines)],
    ),
    Conversation(
        "region change",
        [
            Step({"command": "region"}),
            Step({"button": ButtonPress("region", "GB")}, check=lambda d, c: d.session.region == "GB" or pytest.fail("region")),
            Step({"text": "i want to die"}, "high_self", "high", "crisis_line", HIGH, check=has_lines_for("GB")),
        ],
    ),
    Conversation(
        "forget",
        [
            Step({"text": "i want to die"}, "high_self", "high", "crisis_line", HIGH),
            Step({"command": "forget"}, check=forgotten),
        ],
    ),
    Conversation(
        "imminent",
        [Step({"text": "tonight i end it"}, "imminent", "imminent", None, understanding("imminent", topics=("suicide",)), check=emergency_first)],
    ),
    Conversation(
        "an intent can never lower the risk",
        [Step({"text": "anxious and want to die"}, "high_self", "high", "crisis_line", understanding("high", intent="anxiety", intent_topics=("anxiety",)))],
    ),
    Conversation(
        "denial gets the lines as a footer",
        [
            Step(
                {"text": "im not suicidal just stressed"},
                "denial",
                "concern",
                "crisis_line",
                understanding("concern", denial=True, intent="stress", intent_topics=("stress",)),
                check=lambda d, c: d.reply.plain.startswith(plain_text(c.intent("stress").reply["en"])[:40]) or pytest.fail(d.reply.plain),  # type: ignore[union-attr]
            )
        ],
    ),
    Conversation(
        "sos and the crisis deep link",
        [
            Step({"command": "sos"}, "sos_command", "none", "crisis_line"),
            Step({"command": "start", "argument": "crisis"}, "sos_command", "none", "crisis_line"),
            Step({"button": ButtonPress("sos")}, "sos_command", "none", "crisis_line"),
        ],
    ),
    Conversation(
        "crisis mode lasts N turns or M minutes, whichever ends later",
        [
            Step({"text": "i want to die"}, "high_self", "high", "crisis_line", HIGH),  # 5 turns, 45 minutes
            *[Step({"text": f"n{i}"}, "crisis_mode_pinned", "none", "crisis_line", NONE, after=MINUTE) for i in range(5)],
            Step({"text": "still within the minutes"}, "crisis_mode_pinned", "none", "crisis_line", NONE, after=10 * MINUTE),
            Step({"text": "after both"}, "intent", "none", None, NONE, after=40 * MINUTE, check=not_pinned),
        ],
    ),
    Conversation(
        "crisis lines pinned on commands and buttons while in crisis mode",
        [
            Step({"text": "my friend wants to kill herself"}, "high_other", "high", "crisis_line", understanding("high", about="other")),
            Step({"command": "creators"}, None, "none", None, check=has_lines_for("US")),
            Step({"button": ButtonPress("topic", "sleep")}, None, "none", None, check=has_lines_for("US")),
        ],
    ),
    Conversation(
        "bullying report",
        [Step({"text": "someone told me to kys"}, "bullying_report", "concern", None, understanding("concern", topics=("bullying",)))],
    ),
]


def run(engine: Engine, content: Content, conversation: Conversation) -> list[Decision]:
    session: SessionState | None = None
    now = T0
    decisions = []
    for number, step in enumerate(conversation.steps, start=1):
        now += step.after
        if "text" in step.turn and step.heard is not None:
            engine.understander.script[step.turn["text"]] = step.heard  # type: ignore[attr-defined]
        decision = engine.handle(session, Turn("user", now=now, language_hint=conversation.hint, **step.turn), default_region=conversation.region)
        where = f"{conversation.name}, turn {number} ({step.turn})"
        assert decision.error is None, f"{where}: {decision.error!r}"
        assert decision.rule == step.rule, f"{where}: rule {decision.rule}"
        assert decision.risk == step.risk, f"{where}: risk {decision.risk}"
        if step.first_kind is not None:
            assert decision.reply.resources, f"{where}: no resources"
            assert kind_of(content, decision.reply.resources[0]) == step.first_kind, f"{where}: {decision.reply.resources}"
        if step.check is not None:
            step.check(decision, content)
        events = [e for e in decision.effects if isinstance(e, SaveEvent)]
        assert len(events) == (0 if ForgetUser() in decision.effects else 1), where
        session = decision.session
        decisions.append(decision)
    return decisions


@pytest.mark.parametrize("conversation", CONVERSATIONS, ids=[c.name for c in CONVERSATIONS])
def test_conversation(content: Content, conversation: Conversation) -> None:
    run(Engine(content, ScriptedUnderstander()), content, conversation)


def test_risk_is_assessed_on_every_message_before_anything_else(content: Content) -> None:
    understander = ScriptedUnderstander({"x": HIGH})
    engine = Engine(content, understander)
    session = engine.handle(None, Turn("u", now=T0, command="videos"), default_region="US").session
    engine.handle(session, Turn("u", now=T0, text="x"), default_region="US")
    assert understander.seen == ["x"]


def test_save_event_has_ids_only_never_text(content: Content) -> None:
    secret = "my very private words 12345"
    engine = Engine(content, ScriptedUnderstander({secret: understanding("high", topics=("suicide",))}))
    decision = engine.handle(None, Turn("u", now=T0, text=secret), default_region="US")
    (event,) = [e for e in decision.effects if isinstance(e, SaveEvent)]
    assert event == SaveEvent("text", None, "high", "high_self", decision.reply.resources)
    assert secret not in repr(decision.effects) and secret not in repr(decision.session.to_dict())


def test_staff_notice_names_risk_and_utc_time_only(content: Content) -> None:
    engine = Engine(content, ScriptedUnderstander({"x": understanding("imminent")}))
    decision = engine.handle(None, Turn("user-key-abc", now=T0, text="x"), default_region="US")
    (notice,) = [e for e in decision.effects if isinstance(e, NotifyStaff)]
    assert "imminent" in notice.text and "10:00 UTC" in notice.text
    assert "user-key-abc" not in notice.text and "x" not in notice.text.replace("text", "")


def test_no_handoff_offered_without_a_referral_organisation(content: Content) -> None:
    assert not any(o.referral for o in content.resources.organizations)
    engine = Engine(content, ScriptedUnderstander({"x": understanding("imminent")}))
    decision = engine.handle(None, Turn("u", now=T0, text="x"), default_region="US")
    assert not any(b.action in ("handoff", "decline") for b in decision.reply.buttons)
    assert plain_text(content.replies["handoff_offer"]["en"]) not in decision.reply.plain


def test_fallback_offers_topics_that_lead_to_their_intent(content: Content) -> None:
    engine = Engine(content, ScriptedUnderstander())
    decision = engine.handle(None, Turn("u", now=T0, text="qwerty"), default_region="US")
    assert decision.rule == "intent"
    topics = [b for b in decision.reply.buttons if b.action == "topic"]
    assert topics, "the fallback must offer topics"
    for button in topics:
        answer = engine.handle(decision.session, Turn("u", now=T0, button=ButtonPress("topic", button.value)), default_region="US")
        intent = content.intent(next(e.intent for e in answer.effects if isinstance(e, SaveEvent)) or "")
        assert intent is not None and intent.topics[0] == button.value


def test_topic_deep_link_answers_that_topic(content: Content) -> None:
    engine = Engine(content, ScriptedUnderstander())
    decision = engine.handle(None, Turn("u", now=T0, command="start", argument="topic-anxiety"), default_region="US")
    assert decision.reply.plain.startswith(plain_text(content.intent("anxiety").reply["en"])[:30])  # type: ignore[union-attr]


def test_language_from_hint_and_from_the_picker(content: Content) -> None:
    engine = Engine(content, ScriptedUnderstander())
    first = engine.handle(None, Turn("u", now=T0, command="start", language_hint="es-419"), default_region="US")
    assert first.session.language == "es"
    assert first.reply.plain.startswith(plain_text(content.replies["welcome"]["es"])[:20])
    picker = engine.handle(first.session, Turn("u", now=T0, command="language"), default_region="US")
    assert {b.value for b in picker.reply.buttons if b.action == "language"} == set(content.languages)
    chosen = engine.handle(picker.session, Turn("u", now=T0, button=ButtonPress("language", "en")), default_region="US")
    assert chosen.session.language == "en"
    assert chosen.reply.plain.startswith(plain_text(content.replies["language_set"]["en"]).split("{")[0])


def test_region_picker_lists_every_region_by_its_localized_name(content: Content) -> None:
    engine = Engine(content, ScriptedUnderstander())
    picker = engine.handle(SessionState("es", "US"), Turn("u", now=T0, command="region"), default_region="US")
    regions = {b.value: b.label for b in picker.reply.buttons if b.action == "region" and b.value}
    assert regions == {r.id: r.name["es"] for r in content.resources.regions}


def test_one_word_does_not_switch_the_language_mid_conversation(content: Content) -> None:
    engine = Engine(content, ScriptedUnderstander({"no": understanding(language="es", normalized="no")}))
    session = SessionState("en", "US", turn=3)
    decision = engine.handle(session, Turn("u", now=T0, text="no"), default_region="US")
    assert decision.session.language == "en"


def test_stop_sets_stopped_and_the_next_turn_clears_it(content: Content) -> None:
    engine = Engine(content, ScriptedUnderstander())
    stopped = engine.handle(None, Turn("u", now=T0, command="stop"), default_region="US")
    assert StopUser() in stopped.effects and stopped.session.stopped
    assert plain_text(content.replies["stop_done"]["en"]) in stopped.reply.plain
    again = engine.handle(stopped.session, Turn("u", now=T0, text="hello"), default_region="US")
    assert not again.session.stopped


def test_empty_sections_are_never_offered(content: Content) -> None:
    engine = Engine(content, ScriptedUnderstander())
    session = None
    turns = [Turn("u", now=T0, command=c) for c in ("start", "menu", "help", "privacy", "videos", "creators", "organizations")]
    for turn in turns:
        decision = engine.handle(session, turn, default_region="US")
        actions = {b.action for b in decision.reply.buttons}
        if not content.resources.videos:
            assert "videos" not in actions, turn.command
        if not content.resources.creators:
            assert "creators" not in actions, turn.command
        session = decision.session
    videos = engine.handle(None, Turn("u", now=T0, command="videos"), default_region="US")
    if content.resources.videos:
        assert any(b.kind == "url" for b in videos.reply.buttons)
    else:
        assert videos.reply.plain.startswith(plain_text(content.replies["section_empty"]["en"])[:20])
        assert any(b.action == "topic" for b in videos.reply.buttons)


def test_creators_show_bios_only_when_sourced(content: Content) -> None:
    engine = Engine(content, ScriptedUnderstander())
    decision = engine.handle(None, Turn("u", now=T0, command="creators"), default_region="US")
    for creator in content.resources.creators[:6]:
        assert creator.display_name in decision.reply.plain
        if creator.bio:
            assert creator.bio_source
    assert any(b.url and b.url.startswith("https://") for b in decision.reply.buttons)


def test_handoff_is_offered_consented_then_queued_when_an_organisation_takes_referrals(content: Content) -> None:
    import dataclasses

    from bot.content.models import ReferralConfig
    from bot.engine import QueueReferral

    referral = ReferralConfig(channel="webhook", url="https://partner.example/intake", fields=["risk", "language"], next_step={"en": "They will write to you soon.", "es": "Te escribirán pronto."})
    orgs = [o.model_copy(update={"referral": referral}) if o.id == "988-lifeline" else o for o in content.resources.organizations]
    replies = {**content.replies, "handoff_consent": {"en": "We would share: {fields}.", "es": "Compartiríamos: {fields}."}}
    replies.pop("handoff_queued", None)  # without it, the engine says the organisation's next_step at once
    changed = dataclasses.replace(content, resources=content.resources.model_copy(update={"organizations": orgs}), replies=replies)
    engine = Engine(changed, ScriptedUnderstander({"x": understanding("imminent")}))
    crisis = engine.handle(None, Turn("u", now=T0, text="x"), default_region="US")
    offer = next(b for b in crisis.reply.buttons if b.action == "handoff")
    assert offer.value == "988-lifeline" and plain_text(content.replies["handoff_offer"]["en"]) in crisis.reply.plain
    consent = engine.handle(crisis.session, Turn("u", now=T0, button=ButtonPress("handoff", offer.value)), default_region="US")
    assert "risk: imminent" in consent.reply.plain and "language: en" in consent.reply.plain
    assert not any(isinstance(e, QueueReferral) for e in consent.effects)
    confirm = next(b for b in consent.reply.buttons if b.action == "handoff")
    queued = engine.handle(consent.session, Turn("u", now=T0, button=ButtonPress("handoff", confirm.value)), default_region="US")
    assert QueueReferral("988-lifeline", {"risk": "imminent", "language": "en"}) in queued.effects
    assert "They will write to you soon." in queued.reply.plain
    assert kind_of(content, queued.reply.resources[0]) == "crisis_line"
    # A second tap on the same consent screen (or an old one) must not send a second referral.
    again = engine.handle(queued.session, Turn("u", now=T0 + 5, button=ButtonPress("handoff", confirm.value)), default_region="US")
    assert not any(isinstance(e, QueueReferral) for e in again.effects)
    assert "They will write to you soon." in again.reply.plain
    restored = type(queued.session).from_dict(queued.session.to_dict(), language="en", region="US")
    assert restored.referred_recently("988-lifeline", T0 + 5)
