"""One turn in, one Decision out: assess risk first, pick the escalation rule, build the reply and the effects."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from bot.content.loader import Content
from bot.content.models import EscalationRule, Intent, Organization, RiskLevel, RuleDo, Video
from bot.engine.decision import Decision
from bot.engine.effects import Effect, ForgetUser, NotifyStaff, QueueReferral, SaveEvent, StopUser
from bot.engine.render import MAX_LIST_ITEMS, PRIORITY_CARDS, PRIORITY_LIST, PRIORITY_OFFER, Renderer, ReplyBuilder
from bot.engine.reply import Button, Reply, escape_markup, url_allowed
from bot.engine.resources import (
    crisis_block,
    directory,
    directory_url,
    referral_organizations,
    region_organizations,
    topic_organizations,
)
from bot.engine.rules import RuleFacts, choose_rule, match_rule
from bot.engine.session import RECENT_WINDOW, SessionState
from bot.engine.turn import COMMANDS, CRISIS_DEEP_LINK, TOPIC_DEEP_LINK_PREFIX, ButtonPress, Turn
from bot.nlu.types import Understanding

INTERNAL_ERROR_RULE = "internal_error"
SOS_RULE = "sos_command"
HANDOFF_CONFIRM_PREFIX = "send:"
TALK_TOPIC = "talk_to_someone"
MIN_WORDS_TO_SWITCH = 2
ANY_REGION = "*"

# Reply ids the engine looks up besides those the escalation rules name. The first id of each row is
# the one content should define; later ones are fallbacks. `REQUIRED_REPLIES` is what a validator checks.
REQUIRED_REPLIES: tuple[str, ...] = (
    "welcome",
    "menu",
    "fallback",
    "privacy",
    "forget_done",
    "stop_done",
    "language_set",
    "region_set",
    "section_empty",
    "internal_error",
    "crisis_followup",
    "crisis_footer",
    "staff_notice",
    "line_header",
    "contact_phone",
    "contact_sms",
    "contact_sms_any",
    "contact_whatsapp",
    "hours_24_7",
    "open_now",
    "closed_now",
    "emergency_line",
    "directory_line",
)
OPTIONAL_REPLIES: tuple[str, ...] = (
    "help",  # /help (else welcome)
    "talk",  # the 'talk' button (else the talk_to_someone topic, else fallback)
    "not_in_region",  # above the region buttons when coming from a crisis reply (else region_pick)
    "nontext",  # a sticker, voice note or photo (else menu)
    "resources_intro",  # above /resources (else organizations_intro)
    "language_pick",  # above the language buttons (else menu)
    "region_pick",  # above the region buttons (else menu)
    "videos_intro",  # above the video list (else menu)
    "creators_intro",  # above the creator list (else menu)
    "organizations_intro",  # above the organisation list (else menu)
    "hub_intro",  # the 'hub' button (else the hub's description)
    "handoff_offer",  # with an organisation that takes referrals
    "handoff_consent",  # what will be shared ({fields}); without it no hand-off is offered
    "handoff_queued",
    "handoff_declined",
)
REQUIRED_BUTTONS: tuple[str, ...] = ("not_in_region", "directory", "copy_template")


class Understands(Protocol):
    def understand(self, text: str) -> Understanding: ...


@dataclass
class _Outcome:
    """The result of one handler, before the engine adds pinned lines and the event."""

    builder: ReplyBuilder
    state: SessionState
    effects: list[Effect] = field(default_factory=list)
    rule: str | None = None
    intent: str | None = None


class Engine:
    """Pure: the same content, session and turn always give the same Decision. No I/O, no clock."""

    def __init__(self, content: Content, understander: Understands) -> None:
        self.content = content
        self.understander = understander
        self.renderer = Renderer(content)
        self.languages = tuple(content.languages)
        self.regions = tuple(r.id for r in content.resources.regions)
        self.rules = tuple(content.escalation.rules)
        windows = [r.when.concern_count.within_turns for r in self.rules if r.when.concern_count is not None]
        self.recent_window = max([RECENT_WINDOW, *windows])
        self._crisis_first_rules = frozenset(r.id for r in self.rules if r.do.crisis_lines == "first")
        self._last_resort = self._build_last_resort()
        self._fallbacks: dict[tuple[str, str], Reply] = {}
        for language in self.languages:
            for region in (*self.regions, ANY_REGION):
                try:
                    self._fallbacks[(language, region)] = self._build_fallback(language, region)
                except Exception:  # noqa: BLE001 - a broken fallback for one pair must not stop the bot
                    continue

    # --- public -----------------------------------------------------------------------------------

    def new_session(self, language_hint: str | None, default_region: str) -> SessionState:
        hint = (language_hint or "").split("-")[0].split("_")[0].lower()
        language = hint if hint in self.languages else self.languages[0]
        return SessionState(language=language, region=default_region.upper())

    def handle(self, session: SessionState | None, turn: Turn, *, default_region: str) -> Decision:
        try:
            return self._handle(session, turn, default_region)
        except Exception as error:  # noqa: BLE001 - any failure still gets crisis lines
            return self._failed(session, turn, default_region, error)

    def safe_fallback(self, language: str, region: str) -> Reply:
        """`internal_error` with the crisis lines, precomputed: a dictionary lookup that cannot fail."""
        return (
            self._fallbacks.get((language, region))
            or self._fallbacks.get((language, ANY_REGION))
            or self._fallbacks.get((self.languages[0], region))
            or self._fallbacks.get((self.languages[0], ANY_REGION))
            or self._last_resort
        )

    # --- the turn ---------------------------------------------------------------------------------

    def _handle(self, session: SessionState | None, turn: Turn, default_region: str) -> Decision:
        state = self._starting_state(session, turn, default_region)
        number = state.turn + 1
        in_crisis = state.in_crisis_mode(number, turn.now)
        state = replace(state, turn=number, stopped=False)
        understanding: Understanding | None = None
        if turn.command is not None:
            outcome = self._command(state, turn.command, turn.argument, turn.now, in_crisis)
        elif turn.button is not None:
            outcome = self._button(state, turn.button, turn.now, in_crisis)
        elif turn.text is not None and turn.text.strip():
            understanding = self.understander.understand(turn.text)
            outcome = self._message(state, understanding, number, turn.now, in_crisis)
        else:
            outcome = self._nontext(state)
        if in_crisis and not outcome.builder.has_crisis_lines:  # pinned, even on /forget: nothing is kept, the lines are shown
            self._pin_lines(outcome.builder, turn.now)
        reply = outcome.builder.build()
        effects = list(outcome.effects)
        if not any(isinstance(e, ForgetUser) for e in effects):
            # Nothing is recorded about a person in the turn they ask to be forgotten.
            risk = understanding.risk.level.label if understanding is not None else "none"
            effects.insert(0, SaveEvent(turn.kind, outcome.intent, risk, outcome.rule, reply.resources))
        return Decision(reply=reply, session=outcome.state, effects=tuple(effects), understanding=understanding, rule=outcome.rule)

    def _starting_state(self, session: SessionState | None, turn: Turn, default_region: str) -> SessionState:
        if session is None:
            return self.new_session(turn.language_hint, default_region)
        if session.language not in self.languages:
            session = replace(session, language=self.languages[0])
        return session

    def _builder(self, state: SessionState) -> ReplyBuilder:
        return ReplyBuilder(self.renderer, state.language, state.region)

    # --- free text --------------------------------------------------------------------------------

    def _message(self, state: SessionState, understanding: Understanding, number: int, now: float, in_crisis: bool) -> _Outcome:
        if self._switch_language(state, understanding, number):
            state = replace(state, language=understanding.language or state.language)
        risk = understanding.risk
        intent = self.content.intent(understanding.intent.intent_id) if understanding.intent.intent_id else None
        recent = tuple(
            item for item in (*state.recent, (number, risk.level.label)) if item[0] > number - self.recent_window
        )
        topics = frozenset(risk.topics) | frozenset(understanding.intent.topics) | frozenset(intent.topics if intent else ())
        facts = RuleFacts(
            risk=risk.level,
            about=risk.about,
            denial=risk.denial,
            intent=intent.id if intent else None,
            in_crisis_mode=in_crisis,
            turn=number,
            recent=recent,
            topics=topics,
        )
        rule = choose_rule(self.rules, facts)
        state = replace(
            state,
            recent=recent,
            last_risk=risk.level.label,
            topic=intent.topics[0] if intent else state.topic,
        )
        return self._apply_rule(rule, state, intent, risk.level, number, now)

    def _switch_language(self, state: SessionState, understanding: Understanding, number: int) -> bool:
        """Answer in the language the person writes in; one word ("no", "ok") is too little to switch on,
        except as the very first message of a conversation ("hola")."""
        language = understanding.language
        if language not in self.languages or language == state.language:
            return False
        words = len(understanding.normalized.split()) if understanding.normalized else MIN_WORDS_TO_SWITCH
        return words >= MIN_WORDS_TO_SWITCH or number == 1

    def _apply_rule(
        self,
        rule: EscalationRule,
        state: SessionState,
        intent: Intent | None,
        risk: RiskLevel,
        number: int,
        now: float,
    ) -> _Outcome:
        do = rule.do
        builder = self._builder(state)
        block = crisis_block(self.content, state.region, state.language, now)
        if do.emergency_number:
            builder.emergency(block)
        crisis_first = do.crisis_lines == "first"
        answered = self._say_rule_reply(builder, do, intent)  # the intent's own reply was used
        if crisis_first:
            builder.crisis_lines(block, now=now)
        # Resources: the rule's extra topics, and the intent's own selection when its reply was given.
        resource_topics = [*(intent.resources.topics if answered and intent else ()), *do.topics]
        resource_ids = list(intent.resources.ids) if answered and intent else []
        orgs = topic_organizations(
            self.content, resource_topics, state.region, state.language, exclude=builder.resources, ids=resource_ids
        )
        builder.organization_cards(orgs, now=now)
        self._video_buttons(builder, resource_topics, limit=2)
        effects: list[Effect] = []
        if do.offer_handoff:
            self._offer_handoff(builder, state)
        if do.crisis_lines == "footer":
            builder.crisis_lines(block, header_ids=("crisis_footer",), now=now)
        if not answered and do.reply == "intent" and not crisis_first:
            # No intent understood: ask which topic is closest (the clarifying fallback).
            for button in self.renderer.topic_buttons(state.language):
                builder.step(button)
        steps = [*do.buttons, *(intent.buttons if answered and intent else [])]
        self._next_steps(builder, state, steps, crisis=crisis_first)
        if do.crisis_mode is not None:
            state = state.with_crisis_mode(number, now, do.crisis_mode.turns, do.crisis_mode.minutes)
        if do.notify_staff:
            effects.append(NotifyStaff(self._staff_notice(risk, now)))
        state = replace(state, last_rule=rule.id)
        return _Outcome(builder, state, effects, rule.id, intent.id if intent else None)

    def _say_rule_reply(self, builder: ReplyBuilder, do: RuleDo, intent: Intent | None) -> bool:
        """Add the rule's reply sentence; True when it was the matched intent's own reply."""
        if do.reply == "intent":
            if intent is not None:
                text = self.renderer.localized(intent.reply, builder.language, builder.region)
                if text:
                    builder.add(text)
                    return True
            builder.say(*(r for r in (do.fallback_reply, "fallback") if r))
            return False
        builder.say(do.reply, do.fallback_reply or "fallback")
        return False

    def _staff_notice(self, risk: RiskLevel, now: float) -> str:
        moment = dt.datetime.fromtimestamp(now, tz=dt.timezone.utc).strftime("%H:%M UTC")
        language = self.languages[0]
        text = self.renderer.text("staff_notice", language, ANY_REGION, risk=risk.label, time=moment)
        return text or f"{risk.label} {moment}"

    def _offer_handoff(self, builder: ReplyBuilder, state: SessionState) -> None:
        orgs = referral_organizations(self.content, state.region, state.language)
        if not orgs or "handoff_consent" not in self.content.replies:
            return  # the shipped content has no organisation that takes referrals: offer nothing
        if not builder.say("handoff_offer", priority=PRIORITY_OFFER):
            return
        yes = self.content.buttons.get("handoff_yes")
        no = self.content.buttons.get("handoff_no")
        if yes is not None:
            builder.step(self.renderer.button(yes, state.language, value=orgs[0].id))
        if no is not None:
            builder.step(self.renderer.button(no, state.language))

    # --- next steps -------------------------------------------------------------------------------

    def _next_steps(self, builder: ReplyBuilder, state: SessionState, button_ids: Sequence[str], *, crisis: bool) -> None:
        buttons = self.renderer.buttons_by_ids(button_ids, state.language)
        if not buttons:
            buttons = self.renderer.default_steps(state.language, skip=("sos",) if crisis else ())
        if not any(b.action == "menu" for b in buttons):
            menu = self.renderer.button_for_action("menu", state.language)
            if menu is not None:
                buttons.append(menu)
        for button in buttons:
            builder.step(button)

    def _menu_buttons(self, builder: ReplyBuilder, state: SessionState) -> None:
        for button in self.renderer.topic_buttons(state.language):
            builder.step(button)
        for button in self.renderer.default_steps(state.language, skip=("menu",)):
            builder.step(button)

    def _pin_lines(self, builder: ReplyBuilder, now: float) -> None:
        block = crisis_block(self.content, builder.region, builder.language, now)
        builder.crisis_lines(block, header_ids=("crisis_followup", "crisis_footer"), now=now)

    # --- commands ---------------------------------------------------------------------------------

    def _command(self, state: SessionState, command: str, argument: str | None, now: float, in_crisis: bool = False) -> _Outcome:
        command = command.lower().lstrip("/")
        if command == "start":
            return self._start(state, argument, now)
        if command == "sos":
            return self._sos(state, now)
        if command == "help":
            return self._simple(state, ("help", "welcome", "menu"), menu=True)
        if command == "menu":
            return self._menu(state)
        if command in ("videos", "creators", "organizations", "resources"):
            return self._section(state, command, now)
        if command == "language":
            return self._picker(state, "language")
        if command == "region":
            return self._picker(state, "region", crisis_context=in_crisis or state.last_rule in self._crisis_first_rules)
        if command == "privacy":
            return self._privacy(state)
        if command == "forget":
            return self._forget(state)
        if command == "stop":
            return self._stop(state)
        return self._simple(state, ("help", "welcome", "menu"), menu=True)

    def _start(self, state: SessionState, argument: str | None, now: float) -> _Outcome:
        payload = (argument or "").strip().lower()
        if payload == CRISIS_DEEP_LINK:
            return self._sos(state, now)
        if payload.startswith(TOPIC_DEEP_LINK_PREFIX):
            topic = payload[len(TOPIC_DEEP_LINK_PREFIX) :]
            if topic in self.renderer.topic_intents:
                return self._topic(state, topic, now)
        return self._simple(state, ("welcome", "menu"), menu=True)

    def _sos(self, state: SessionState, now: float) -> _Outcome:
        facts = RuleFacts(risk=RiskLevel.NONE, command="sos", turn=state.turn)
        rule = match_rule(self.rules, facts)
        if rule is None:
            rule = EscalationRule(id=SOS_RULE, do=RuleDo(reply="sos", crisis_lines="first", emergency_number=True))
        elif rule.do.crisis_lines != "first":
            rule = rule.model_copy(update={"do": rule.do.model_copy(update={"crisis_lines": "first"})})
        return self._apply_rule(rule, state, None, RiskLevel.NONE, state.turn, now)

    def _simple(self, state: SessionState, reply_ids: Sequence[str], *, menu: bool) -> _Outcome:
        builder = self._builder(state)
        builder.say(*reply_ids)
        if menu:
            self._menu_buttons(builder, state)
        else:
            self._next_steps(builder, state, (), crisis=False)
        return _Outcome(builder, state)

    def _menu(self, state: SessionState) -> _Outcome:
        return self._simple(state, ("menu", "welcome"), menu=True)

    def _nontext(self, state: SessionState) -> _Outcome:
        """A sticker, a voice note, a photo without caption: a short kind answer, the menu and SOS."""
        builder = self._builder(state)
        builder.say("nontext", "menu")
        for action in ("sos", "menu"):
            button = self.renderer.button_for_action(action, state.language)
            if button is not None:
                builder.step(button)
        return _Outcome(builder, state)

    def _privacy(self, state: SessionState) -> _Outcome:
        builder = self._builder(state)
        builder.say("privacy")
        forget = self.renderer.button_for_action("forget", state.language)
        if forget is not None:
            builder.step(forget)
        self._next_steps(builder, state, (), crisis=False)
        return _Outcome(builder, state)

    def _forget(self, state: SessionState) -> _Outcome:
        fresh = SessionState(language=state.language, region=state.region)
        builder = self._builder(fresh)
        builder.say("forget_done")
        self._menu_buttons(builder, fresh)
        return _Outcome(builder, fresh, [ForgetUser()])

    def _stop(self, state: SessionState) -> _Outcome:
        state = replace(state, stopped=True)
        builder = self._builder(state)
        builder.say("stop_done")
        sos = self.renderer.button_for_action("sos", state.language)
        if sos is not None:
            builder.step(sos)
        menu = self.renderer.button_for_action("menu", state.language)
        if menu is not None:
            builder.step(menu)
        return _Outcome(builder, state, [StopUser()])

    def _picker(self, state: SessionState, kind: str, *, crisis_context: bool = False) -> _Outcome:
        builder = self._builder(state)
        if kind == "region" and crisis_context:
            builder.say("not_in_region", "region_pick", "menu")  # "Not in <region>? Pick your country ..."
        else:
            builder.say(f"{kind}_pick", "menu")
        buttons = self.renderer.language_buttons(state.language) if kind == "language" else self.renderer.region_buttons(state.language)
        for button in buttons:
            builder.step(button)
        if kind == "region":
            found = directory(self.content, state.language)
            url = directory_url(found) if found else None
            label = self.renderer.button_label("directory", state.language)
            if found is not None and url and label and url_allowed(url):
                builder.step(Button(label=label, action="url", url=url))
                builder.note_resource(found.id)
        menu = self.renderer.button_for_action("menu", state.language)
        if menu is not None:
            builder.step(menu)
        return _Outcome(builder, state)

    # --- sections ---------------------------------------------------------------------------------

    def _section(self, state: SessionState, section: str, now: float) -> _Outcome:
        builder = self._builder(state)
        if section == "videos":
            filled = self._videos(builder, state)
        elif section == "creators":
            filled = self._creators(builder, state)
        else:
            filled = self._organizations(builder, state, now, section)
        if not filled:
            builder = self._builder(state)
            builder.say("section_empty", "menu")
            self._menu_buttons(builder, state)
            return _Outcome(builder, state)
        self._next_steps(builder, state, (), crisis=False)
        return _Outcome(builder, state)

    def _videos_for(self, state: SessionState, topics: Sequence[str]) -> list[Video]:
        videos = list(self.content.resources.videos)
        in_language = [v for v in videos if v.language == state.language]
        pool = in_language or videos
        wanted = set(topics)
        pool.sort(key=lambda v: 0 if wanted.intersection(v.topics) else 1)
        return pool

    def _video_buttons(self, builder: ReplyBuilder, topics: Sequence[str], *, limit: int) -> int:
        wanted = set(topics)
        count = 0
        for video in self.content.resources.videos:
            if count >= limit:
                break
            if video.language == builder.language and wanted.intersection(video.topics) and url_allowed(video.url):
                builder.resource_buttons.append(Button(label=f"▶️ {video.title}", action="url", url=video.url))
                count += 1
        return count

    def _videos(self, builder: ReplyBuilder, state: SessionState) -> bool:
        videos = self._videos_for(state, [state.topic] if state.topic else [])
        if not videos:
            return False
        builder.say("videos_intro", "menu")
        for video in videos[:MAX_LIST_ITEMS]:
            if url_allowed(video.url):
                builder.resource_buttons.append(Button(label=f"▶️ {video.title}", action="url", url=video.url))
        return True

    def _creators(self, builder: ReplyBuilder, state: SessionState) -> bool:
        creators = list(self.content.resources.creators)
        if not creators:
            return False
        builder.say("creators_intro", "menu")
        lines = []
        for creator in creators[:MAX_LIST_ITEMS]:
            line = f"*{escape_markup(creator.display_name)}* {escape_markup(creator.handle)}"
            bio = self.renderer.localized(creator.bio, state.language, state.region, fill_values=False) if creator.bio and creator.bio_source else None
            if bio:
                line = f"{line}: {escape_markup(bio)}"
            lines.append(line)
            if url_allowed(creator.url):
                builder.resource_buttons.append(Button(label=creator.display_name, action="url", url=creator.url))
        builder.add("\n".join(lines), priority=PRIORITY_LIST)
        return True

    def _organizations(self, builder: ReplyBuilder, state: SessionState, now: float, section: str) -> bool:
        orgs = region_organizations(self.content, state.region, state.language)
        found = directory(self.content, state.language)
        if not orgs and found is None:
            return False
        builder.say(f"{section}_intro", "organizations_intro", "menu")
        builder.organization_cards(orgs[:MAX_LIST_ITEMS], now=now, priority=PRIORITY_CARDS)
        if found is not None:
            url = directory_url(found)
            label = self.renderer.button_label("directory", state.language)
            if url and label and url_allowed(url):
                builder.resource_buttons.append(Button(label=label, action="url", url=url))
                builder.note_resource(found.id)
        region_button = self.content.buttons.get("not_in_region")
        if region_button is not None:
            builder.step(self.renderer.button(region_button, state.language))
        return True

    def _topic(self, state: SessionState, topic: str, now: float) -> _Outcome:
        intent_id = self.renderer.topic_intents.get(topic)
        intent = self.content.intent(intent_id) if intent_id else None
        if intent is None:
            return self._menu(state)
        state = replace(state, topic=topic)
        builder = self._builder(state)
        text = self.renderer.localized(intent.reply, state.language, state.region)
        if text:
            builder.add(text)
        topics = intent.resources.topics or intent.topics
        orgs = topic_organizations(self.content, topics, state.region, state.language, ids=intent.resources.ids)
        builder.organization_cards(orgs, now=now)
        self._video_buttons(builder, topics, limit=2)
        self._next_steps(builder, state, intent.buttons, crisis=False)
        return _Outcome(builder, state, intent=intent.id)

    # --- buttons ----------------------------------------------------------------------------------

    def _button(self, state: SessionState, press: ButtonPress, now: float, in_crisis: bool) -> _Outcome:
        action, value = press.action, press.value
        if action == "topic" and value:
            return self._topic(state, value, now)
        if action == "language" and value:
            return self._set_language(state, value)
        if action == "region" and value:
            return self._set_region(state, value, now, in_crisis)
        if action == "talk":
            return self._talk(state, now)
        if action == "hub":
            return self._hub(state)
        if action == "handoff":
            return self._handoff(state, value, now)
        if action == "decline":
            outcome = self._simple(state, ("handoff_declined", "menu"), menu=False)
            self._pin_lines(outcome.builder, now)
            return outcome
        if action in COMMANDS:
            return self._command(state, action, None, now, in_crisis)
        return self._menu(state)

    def _set_language(self, state: SessionState, value: str) -> _Outcome:
        code = value.lower()
        if code not in self.languages:
            return self._picker(state, "language")
        state = replace(state, language=code)
        return self._simple(state, ("language_set", "menu"), menu=True)

    def _set_region(self, state: SessionState, value: str, now: float, in_crisis: bool) -> _Outcome:
        code = value.upper()
        if code not in self.regions:
            return self._picker(state, "region", crisis_context=in_crisis)
        state = replace(state, region=code)
        builder = self._builder(state)
        builder.say("region_set", "menu")
        if in_crisis or state.last_rule in self._crisis_first_rules:
            # They asked "not in <region>?" from a crisis reply: show the new region's lines at once.
            builder.crisis_lines(crisis_block(self.content, code, state.language, now), now=now)
            self._next_steps(builder, state, (), crisis=True)
        else:
            self._menu_buttons(builder, state)
        return _Outcome(builder, state)

    def _talk(self, state: SessionState, now: float) -> _Outcome:
        """'Talk to someone': the `talk` reply when content has one, else the talk_to_someone topic."""
        if "talk" not in self.content.replies and TALK_TOPIC in self.renderer.topic_intents:
            return self._topic(state, TALK_TOPIC, now)
        builder = self._builder(state)
        builder.say("talk", "fallback")
        for button in self.renderer.topic_buttons(state.language):
            builder.step(button)
        self._next_steps(builder, state, (), crisis=False)
        return _Outcome(builder, state)

    def _hub(self, state: SessionState) -> _Outcome:
        hub = self.content.resources.hub
        builder = self._builder(state)
        if not builder.say("hub_intro", "hub"):
            text = self.renderer.localized(hub.description, state.language, state.region)
            if text:
                builder.add(text)
        if url_allowed(hub.url):
            builder.resource_buttons.append(Button(label=hub.name, action="url", url=hub.url))
        self._next_steps(builder, state, (), crisis=False)
        return _Outcome(builder, state)

    def _handoff(self, state: SessionState, value: str | None, now: float) -> _Outcome:
        orgs = {o.id: o for o in referral_organizations(self.content, state.region, state.language)}
        confirmed = bool(value and value.startswith(HANDOFF_CONFIRM_PREFIX))
        org_id = value[len(HANDOFF_CONFIRM_PREFIX) :] if value and confirmed else value
        org = orgs.get(org_id or "")
        if org is None or org.referral is None or "handoff_consent" not in self.content.replies:
            return self._sos(state, now)
        payload = self._referral_payload(org, state)
        builder = self._builder(state)
        if not confirmed:
            fields = ", ".join(f"{key}: {val}" for key, val in payload.items())
            builder.say("handoff_consent", fields=escape_markup(fields), name=escape_markup(org.name))
            yes = self.content.buttons.get("handoff_yes")
            no = self.content.buttons.get("handoff_no")
            if yes is not None:
                builder.step(self.renderer.button(yes, state.language, value=f"{HANDOFF_CONFIRM_PREFIX}{org.id}"))
            if no is not None:
                builder.step(self.renderer.button(no, state.language))
            self._pin_lines(builder, now)
            return _Outcome(builder, state)
        already = state.referred_recently(org.id, now)  # a double tap or an old consent screen: send nothing twice
        if not builder.say("handoff_queued"):
            next_step = self.renderer.localized(org.referral.next_step, state.language, state.region)
            if next_step:
                builder.add(next_step)
        builder.note_resource(org.id)
        self._pin_lines(builder, now)
        self._next_steps(builder, state, (), crisis=True)
        if already:
            return _Outcome(builder, state)
        state = replace(state, referred=(*((o, t) for o, t in state.referred if now - t < 86400.0), (org.id, now)))
        return _Outcome(builder, state, [QueueReferral(org.id, payload)])

    @staticmethod
    def _referral_payload(org: Organization, state: SessionState) -> dict[str, str]:
        assert org.referral is not None
        available = {"topic": state.topic, "risk": state.last_risk, "language": state.language, "region": state.region}
        return {name: value for name in org.referral.fields if (value := available.get(name))}

    # --- failure ----------------------------------------------------------------------------------

    def _failed(self, session: SessionState | None, turn: Turn, default_region: str, error: Exception) -> Decision:
        try:
            state = session if session is not None else SessionState(language=self.languages[0], region=default_region)
            language = state.language if state.language in self.languages else self.languages[0]
            reply = self.safe_fallback(language, state.region)
            event = SaveEvent(turn.kind, None, "none", INTERNAL_ERROR_RULE, reply.resources)
            return Decision(reply=reply, session=state, effects=(event,), understanding=None, rule=INTERNAL_ERROR_RULE, error=error)
        except Exception:  # noqa: BLE001
            fallback = SessionState(language="en", region="US")
            return Decision(reply=self._last_resort, session=fallback, effects=(), understanding=None, rule=INTERNAL_ERROR_RULE, error=error)

    def _build_fallback(self, language: str, region: str) -> Reply:
        builder = ReplyBuilder(self.renderer, language, region)
        builder.say("internal_error", "crisis_followup")
        block = crisis_block(self.content, region, language, None)
        builder.crisis_lines(block, now=None)
        builder.emergency(block)
        for action in ("sos", "menu"):
            button = self.renderer.button_for_action(action, language)
            if button is not None:
                builder.step(button)
        return builder.build()

    def _build_last_resort(self) -> Reply:
        """For a region or language nothing else covers: the directory link and whatever text content has."""
        try:
            found = directory(self.content, self.languages[0])
            url = directory_url(found) if found else None
            language = self.languages[0]
            text = self.renderer.text("internal_error", language, ANY_REGION) or self.renderer.text("directory_line", language, ANY_REGION)
            label = self.renderer.button_label("directory", language) or (found.name if found else "findahelpline.com")
            buttons = (Button(label=label, action="url", url=url),) if url and url_allowed(url) else ()
            if text:
                return Reply(text=text, buttons=buttons, resources=(found.id,) if found else ())
        except Exception:  # noqa: BLE001
            pass
        # Only reached when the content has neither `internal_error` nor a directory: never with valid content.
        return Reply(
            text="Something went wrong. If you are in danger, call your local emergency number now.",
            buttons=(Button(label="Find a helpline", action="url", url="https://findahelpline.com"),),
        )
