"""Checks across files that a schema cannot express: references, coverage, safety lint, dead numbers.

Each problem names a file and line. Warnings (a `verified` date older than a year) do not fail.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
import string
from collections.abc import Iterable
from dataclasses import dataclass, field

from bot.content.loader import Content, Problem
from bot.content.yaml_source import PathKey, SourceFile

TELEGRAM_TEXT_LIMIT = 4096
STALE_AFTER = dt.timedelta(days=365)
CRISIS_LANGUAGE_REGIONS = {"es": ("US", "ES", "MX")}

# Reply ids the engine and shells ask for by name.
REQUIRED_REPLIES = (
    "welcome", "help", "menu", "fallback", "bot_disclaimer", "nontext", "resources_intro", "videos_intro",
    "creators_intro", "organizations_intro", "hub_intro", "section_empty", "privacy", "forget_done", "stop_done",
    "language_pick", "language_set", "region_pick", "region_set", "not_in_region", "internal_error", "group_notice",
    "sos", "crisis_self", "crisis_imminent", "crisis_other", "crisis_followup", "line_header", "contact_phone",
    "contact_sms", "contact_sms_any", "contact_whatsapp", "hours_24_7", "open_now", "closed_now", "emergency_line",
    "directory_line", "crisis_footer", "staff_notice",
)
REQUIRED_BUTTONS = ("sos", "menu", "talk", "organizations", "language", "region", "lang_en", "lang_es", "not_in_region", "directory", "copy_template")
PLACEHOLDERS = frozenset({"region", "language", "hub", "name", "number", "keyword", "hours", "risk", "time", "fields"})  # fields: handoff_consent


@dataclass
class _Checker:
    content: Content
    today: dt.date
    problems: list[Problem] = field(default_factory=list)

    def add(self, file: str, key: PathKey, message: str, *, warning: bool = False) -> None:
        source = self.content.files.get(file)
        line = source.line_of(key) if source else 1
        self.problems.append(Problem(file, line, message, warning))

    def refer(self, file: str, key: PathKey, kind: str, value: str, known: Iterable[str]) -> None:
        known = list(known)
        if value in known:
            return
        close = difflib.get_close_matches(value, known, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        self.add(file, key, f"unknown {kind} '{value}'{hint}")


def validate_content(content: Content, *, today: dt.date | None = None) -> list[Problem]:
    """Every cross-file problem in the content (the schema was checked when it loaded)."""
    check = _Checker(content, today or dt.date.today())
    _ids(check)
    _references(check)
    _replies(check)
    _contacts(check)
    _coverage(check)
    _examples(check)
    return sorted(check.problems)


def _duplicates(check: _Checker, file: str, section: str, ids: list[str]) -> None:
    seen: set[str] = set()
    for index, item_id in enumerate(ids):
        if item_id in seen:
            check.add(file, (section, index, "id"), f"duplicate {section} id '{item_id}'")
        seen.add(item_id)


def _ids(check: _Checker) -> None:
    r = check.content.resources
    for section in ("topics", "regions", "organizations", "videos", "creators"):
        _duplicates(check, "resources.yaml", section, [item.id for item in getattr(r, section)])
    esc = check.content.escalation
    for section in ("signals", "modifiers", "masks", "rules", "lint"):
        _duplicates(check, "intents/escalation.yaml", section, [item.id for item in getattr(esc, section)])
    seen: dict[str, str] = {}
    for located in check.content.intents:
        shown = _shown(check, located.file)
        if located.intent.id in seen:
            check.add(shown, ("intents", located.index, "id"), f"duplicate intent id '{located.intent.id}' (also in {seen[located.intent.id]})")
        seen.setdefault(located.intent.id, shown)


def _shown(check: _Checker, source: SourceFile) -> str:
    return next(name for name, file in check.content.files.items() if file is source)


def _references(check: _Checker) -> None:
    content = check.content
    r = content.resources
    topics = [t.id for t in r.topics]
    regions = [g.id for g in r.regions]
    orgs = [o.id for o in r.organizations]
    languages = r.languages
    creators = [c.id for c in r.creators]
    intents = [li.intent.id for li in content.intents]
    replies = list(content.replies) + intents
    buttons = list(content.buttons)
    res = "resources.yaml"
    for i, org in enumerate(r.organizations):
        for j, topic in enumerate(org.topics):
            check.refer(res, ("organizations", i, "topics", j), "topic", topic, topics)
        for j, region in enumerate(org.regions):
            if region != "*":
                check.refer(res, ("organizations", i, "regions", j), "region", region, regions)
        for j, language in enumerate(org.languages):
            check.refer(res, ("organizations", i, "languages", j), "language", language, languages)
    for i, video in enumerate(r.videos):
        for j, topic in enumerate(video.topics):
            check.refer(res, ("videos", i, "topics", j), "topic", topic, topics)
        if video.creator:
            check.refer(res, ("videos", i, "creator"), "creator", video.creator, creators)
    for i, creator in enumerate(r.creators):
        for j, topic in enumerate(creator.topics):
            check.refer(res, ("creators", i, "topics", j), "topic", topic, topics)
    for i, number in enumerate(r.emergency_numbers):
        check.refer(res, ("emergency_numbers", i, "region"), "region", number.region, regions)
    for located in content.intents:
        shown, intent, base = _shown(check, located.file), located.intent, ("intents", located.index)
        for j, topic in enumerate(intent.topics):
            check.refer(shown, base + ("topics", j), "topic", topic, topics)
        for j, topic in enumerate(intent.resources.topics):
            check.refer(shown, base + ("resources", "topics", j), "topic", topic, topics)
        for j, org in enumerate(intent.resources.ids):
            check.refer(shown, base + ("resources", "ids", j), "organisation", org, orgs)
        for j, button in enumerate(intent.buttons):
            check.refer(shown, base + ("buttons", j), "button", button, buttons)
        for language in languages:
            if language not in intent.reply:
                check.add(shown, base + ("reply",), f"reply of intent '{intent.id}' is missing language '{language}'")
    esc = "intents/escalation.yaml"
    for i, signal in enumerate(content.escalation.signals):
        for j, topic in enumerate(signal.topics):
            check.refer(esc, ("signals", i, "topics", j), "topic", topic, topics)
    for i, mask in enumerate(content.escalation.masks):
        for j, topic in enumerate(mask.topics):
            check.refer(esc, ("masks", i, "topics", j), "topic", topic, topics)
    for i, rule in enumerate(content.escalation.rules):
        if rule.do.reply != "intent":
            check.refer(esc, ("rules", i, "do", "reply"), "reply", rule.do.reply, replies)
        if rule.do.fallback_reply:
            check.refer(esc, ("rules", i, "do", "fallback_reply"), "reply", rule.do.fallback_reply, replies)
        for j, topic in enumerate(rule.do.topics):
            check.refer(esc, ("rules", i, "do", "topics", j), "topic", topic, topics)
        for j, topic in enumerate(rule.when.topics or []):
            check.refer(esc, ("rules", i, "when", "topics", j), "topic", topic, topics)
        for j, intent_id in enumerate(rule.when.intent or []):
            check.refer(esc, ("rules", i, "when", "intent", j), "intent", intent_id, intents)
        for j, button in enumerate(rule.do.buttons):
            check.refer(esc, ("rules", i, "do", "buttons", j), "button", button, buttons)
    for button_id, button in content.buttons.items():
        if button.action == "topic" and button.value:
            file = _reply_file(check, button_id, "buttons")
            check.refer(file, ("buttons", button_id, "value"), "topic", button.value, topics)


def _reply_file(check: _Checker, key: str, section: str) -> str:
    for name, source in check.content.files.items():
        if isinstance(source.data, dict) and key in (source.data.get(section) or {}):
            return name
    return "intents/escalation.yaml"


def _all_reply_texts(check: _Checker) -> Iterable[tuple[str, PathKey, str, str]]:
    for reply_id, texts in check.content.replies.items():
        file = _reply_file(check, reply_id, "replies")
        for language, text in texts.items():
            yield file, ("replies", reply_id, language), language, text
    for located in check.content.intents:
        shown = _shown(check, located.file)
        for language, text in located.intent.reply.items():
            yield shown, ("intents", located.index, "reply", language), language, text


def _replies(check: _Checker) -> None:
    content = check.content
    languages = content.resources.languages
    for reply_id in REQUIRED_REPLIES:
        if reply_id not in content.replies:
            check.add("intents/escalation.yaml" if reply_id.startswith(("crisis", "contact", "line", "sos")) else "intents/conversation.yaml", (), f"missing reply '{reply_id}' (the engine needs it)")
    for button_id in REQUIRED_BUTTONS:
        if button_id not in content.buttons:
            check.add("intents/conversation.yaml", (), f"missing button '{button_id}' (the engine needs it)")
    for reply_id, texts in content.replies.items():
        for language in languages:
            if language not in texts:
                check.add(_reply_file(check, reply_id, "replies"), ("replies", reply_id), f"reply '{reply_id}' is missing language '{language}'")
    for button_id, button in content.buttons.items():
        for language in languages:
            if language not in button.label:
                check.add(_reply_file(check, button_id, "buttons"), ("buttons", button_id, "label"), f"button '{button_id}' is missing language '{language}'")
    lint = [(rule, re.compile(rule.pattern, re.IGNORECASE)) for rule in content.escalation.lint]
    for file, key, _language, text in _all_reply_texts(check):
        if utf16_length(text) > TELEGRAM_TEXT_LIMIT:
            check.add(file, key, f"reply is {utf16_length(text)} UTF-16 units; Telegram allows {TELEGRAM_TEXT_LIMIT}")
        for rule, regex in lint:
            if regex.search(text):
                check.add(file, key, f"safe-messaging: {rule.message} [{rule.id}]")
        for _, name, _, _ in string.Formatter().parse(text.replace("{{", "").replace("}}", "")):
            if name is not None and name not in PLACEHOLDERS:
                check.add(file, key, f"unknown placeholder '{{{name}}}' (allowed: {', '.join(sorted(PLACEHOLDERS))})")
        if text.count("*") % 2:
            check.add(file, key, "unbalanced '*' (bold markup)")


def utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _digits(number: str) -> str:
    return re.sub(r"[^0-9A-Z]", "", number.upper())


def _contacts(check: _Checker) -> None:
    r = check.content.resources
    dead = {_digits(d.number): d for d in r.dead_numbers}
    res = "resources.yaml"
    for i, org in enumerate(r.organizations):
        _stale(check, ("organizations", i, "verified"), org.verified, org.id)
        for j, contact in enumerate(org.contacts):
            key = ("organizations", i, "contacts", j)
            _stale(check, key + ("verified",), contact.verified, org.id)
            if contact.number and _digits(contact.number) in dead:
                entry = dead[_digits(contact.number)]
                check.add(res, key + ("number",), f"number {contact.number} is on the dead list: {entry.reason}")
            for k, language in enumerate(contact.languages or []):
                check.refer(res, key + ("languages", k), "language", language, org.languages)
    for i, number in enumerate(r.emergency_numbers):
        _stale(check, ("emergency_numbers", i, "verified"), number.verified, number.region)


def _stale(check: _Checker, key: PathKey, verified: dt.date, what: str) -> None:
    if verified > check.today:
        check.add("resources.yaml", key, f"'{what}': verified date {verified} is in the future")
    elif check.today - verified > STALE_AFTER:
        check.add("resources.yaml", key, f"'{what}': source last read {verified}, over a year ago: re-check it", warning=True)


def _coverage(check: _Checker) -> None:
    r = check.content.resources
    named = {g.id for g in r.regions}
    named |= {region for org in r.organizations for region in org.regions if region != "*"}
    named |= {n.region for n in r.emergency_numbers}
    lines = [o for o in r.organizations if o.kind == "crisis_line" and o.is_24_7]
    for region in sorted(named):
        if not any(region in o.regions for o in lines):
            index = next((i for i, g in enumerate(r.regions) if g.id == region), None)
            check.add("resources.yaml", ("regions", index) if index is not None else ("regions",), f"region {region} has no 24/7 crisis line ('*' lines are directories and do not count)")
        if not any(n.region == region for n in r.emergency_numbers):
            index = next((i for i, g in enumerate(r.regions) if g.id == region), None)
            check.add("resources.yaml", ("regions", index) if index is not None else ("regions",), f"region {region} has no emergency number")
    for language, regions in CRISIS_LANGUAGE_REGIONS.items():
        if language not in r.languages:
            continue
        for region in regions:
            if not any(region in o.regions and _serves(o, language) for o in lines):
                check.add("resources.yaml", ("organizations",), f"no 24/7 crisis line in {region} serves language '{language}'")
    if not any(o.kind == "directory" and "*" in o.regions for o in r.organizations):
        check.add("resources.yaml", ("organizations",), "no international directory (kind: directory, regions: ['*'])")


def _serves(org, language: str) -> bool:  # type: ignore[no-untyped-def]
    return language in org.languages and any(c.languages is None or language in c.languages for c in org.contacts if c.kind in ("phone", "sms", "chat", "whatsapp"))


def _examples(check: _Checker) -> None:
    owner: dict[str, tuple[str, str]] = {}
    for located in check.content.intents:
        shown = _shown(check, located.file)
        for language, examples in located.intent.examples.items():
            for j, example in enumerate(examples):
                key = " ".join(example.casefold().split())
                if key in owner and owner[key][0] != located.intent.id:
                    check.add(shown, ("intents", located.index, "examples", language, j), f"example also belongs to intent '{owner[key][0]}' ({owner[key][1]})")
                owner.setdefault(key, (located.intent.id, shown))

