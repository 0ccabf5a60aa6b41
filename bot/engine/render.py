"""Build a Reply from YAML texts only: reply sentences, crisis-line blocks, resource cards and buttons.

Every word the person reads comes from `resources.yaml` or `intents/*.yaml`; the engine adds only
line breaks, separators and values it escapes (names, numbers). Crisis sections are never cut to fit
Telegram's 4096 UTF-16 units; lists are.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from bot.content.loader import Content
from bot.content.models import ButtonDef, Contact, Hours, Organization, WeeklyHours
from bot.engine.reply import (
    TELEGRAM_TEXT_LIMIT,
    Button,
    Reply,
    escape_markup,
    markup_segments,
    plain_text,
    url_allowed,
    utf16_len,
)
from bot.engine.resources import CrisisBlock, LineChoice, contacts_for, directory_url, open_state

SEPARATOR = "\n\n"
CONTACT_SEPARATOR = " · "
ELLIPSIS = "…"
MAX_COPY_BUTTONS = 4
MAX_LIST_ITEMS = 6

# Section priorities: higher survives longer when the text has to shrink. Crisis sections are protected.
PRIORITY_REPLY = 100
PRIORITY_OFFER = 60
PRIORITY_CARDS = 30
PRIORITY_LIST = 20

SPECIAL_BUTTONS = frozenset({"not_in_region", "directory", "copy_template", "handoff_yes", "handoff_no"})
DEFAULT_STEP_ACTIONS = ("sos", "talk", "videos", "creators", "organizations", "menu")
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
_EMPTY_PARENS = re.compile(r"\s*\(\s*\)")
_CONTACT_EMOJI = {"chat": "💬", "whatsapp": "💬", "web": "🔗"}


def fill(template: str, values: Mapping[str, str]) -> str:
    """Replace `{name}` placeholders that have a value; leave anything else as written."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def truncate_markup(text: str, budget: int) -> str:
    """Cut marked-up text so that its plain form takes at most `budget` UTF-16 units (ending with an ellipsis)."""
    if utf16_len(plain_text(text)) <= budget:
        return text
    room = max(0, budget - utf16_len(ELLIPSIS))
    out: list[str] = []
    for part, bold in markup_segments(text):
        if room <= 0:
            break
        size = utf16_len(part)
        if size > room:
            cut = part.encode("utf-16-le")[: room * 2].decode("utf-16-le", errors="ignore")
            space = cut.rfind(" ")
            part = (cut[:space] if space > len(cut) // 2 else cut).rstrip()
            room = 0
        else:
            room -= size
        piece = escape_markup(part)
        out.append(f"*{piece}*" if bold and piece else piece)
    return "".join(out).rstrip() + ELLIPSIS


@dataclass(frozen=True)
class Section:
    text: str
    priority: int = PRIORITY_REPLY
    protected: bool = False  # crisis lines, emergency number, directory line: never dropped or cut


@dataclass
class ReplyBuilder:
    """Collects the sections, buttons and resource ids of one reply (a local, short-lived builder)."""

    renderer: Renderer
    language: str
    region: str
    sections: list[Section] = field(default_factory=list)
    crisis_buttons: list[Button] = field(default_factory=list)
    resource_buttons: list[Button] = field(default_factory=list)
    step_buttons: list[Button] = field(default_factory=list)
    resources: list[str] = field(default_factory=list)
    has_crisis_lines: bool = False

    # --- text -------------------------------------------------------------------------------------

    def text(self, reply_id: str, **values: str) -> str | None:
        return self.renderer.text(reply_id, self.language, self.region, **values)

    def say(self, *reply_ids: str, priority: int = PRIORITY_REPLY, protected: bool = False, **values: str) -> bool:
        """Add the first of `reply_ids` that the content has; False when it has none of them."""
        for reply_id in reply_ids:
            text = self.text(reply_id, **values)
            if text:
                self.add(text, priority=priority, protected=protected)
                return True
        return False

    def add(self, text: str, *, priority: int = PRIORITY_REPLY, protected: bool = False) -> None:
        if text.strip():
            self.sections.append(Section(text.strip(), priority, protected))

    # --- crisis -----------------------------------------------------------------------------------

    def emergency(self, block: CrisisBlock) -> None:
        if block.emergency is None:
            return
        number = block.emergency.number
        line = self.text("emergency_line", number=escape_markup(number))
        if line:
            self.add(line, protected=True)
        self.copy_button(number, first=True)

    def crisis_lines(self, block: CrisisBlock, *, header_ids: Sequence[str] = (), now: float | None) -> None:
        """The lines of the region, then the directory line and button, then 'not in <region>?'."""
        parts: list[str] = []
        for reply_id in header_ids:
            header = self.text(reply_id)
            if header:
                parts.append(header)
                break
        for choice in block.lines:
            parts.append(self.line_card(choice, now=now, crisis=True))
            self.note_resource(choice.org.id)
        if not any(choice.open_now is not False for choice in block.lines) and block.emergency is not None:
            # No line is open now (or the region has none): the emergency number is never left out.
            number = block.emergency.number
            line = self.text("emergency_line", number=escape_markup(number))
            if line and not any(line in s.text for s in self.sections):
                parts.append(line)
                self.copy_button(number)
        if block.directory is not None:
            line = self.text("directory_line")
            if line:
                parts.append(line)
            url = directory_url(block.directory)
            if url and url_allowed(url):
                label = self.renderer.button_label("directory", self.language) or block.directory.name
                self.crisis_buttons.append(Button(label=label, action="url", url=url))
            self.note_resource(block.directory.id)
        if parts:
            self.add("\n".join(parts), protected=True)
        not_in_region = self.renderer.content.buttons.get("not_in_region")
        if not_in_region is not None:
            self.crisis_buttons.append(self.renderer.button(not_in_region, self.language))
        self.has_crisis_lines = True

    def line_card(self, choice: LineChoice, *, now: float | None, crisis: bool, description: bool = False) -> str:
        org = choice.org
        header = self.text("line_header", name=escape_markup(org.name), hours=self.hours_label(org.hours, now))
        lines = [_EMPTY_PARENS.sub("", header) if header else f"*{escape_markup(org.name)}*"]
        if description:
            text = _localized(org.description, self.language, self.renderer.default_language)
            if text:
                lines.append(escape_markup(text))
        contacts = self.contact_texts(org, choice.contacts, now=now, crisis=crisis)
        if contacts:
            lines.append(CONTACT_SEPARATOR.join(contacts))
        return "\n".join(lines)

    def hours_label(self, hours: Hours | None, now: float | None) -> str:
        if hours is None:
            return ""
        if hours == "24/7":
            return self.text("hours_24_7") or ""
        if isinstance(hours, WeeklyHours):
            label = escape_markup(_localized(hours.label, self.language, self.renderer.default_language) or "")
            state = open_state(hours, now)
            status = self.text("open_now") if state else self.text("closed_now") if state is False else None
            return ", ".join(part for part in (label, status) if part)
        return ""

    def contact_texts(self, org: Organization, contacts: Sequence[Contact], *, now: float | None, crisis: bool) -> list[str]:
        texts: list[str] = []
        for contact in _distinct(contacts):
            text = self.contact_text(contact)
            if contact.url and (contact.kind in ("chat", "whatsapp") or (contact.kind == "web" and not crisis)):
                if url_allowed(contact.url):
                    label = f"{_CONTACT_EMOJI.get(contact.kind, '🔗')} {org.name}"
                    target = self.crisis_buttons if crisis else self.resource_buttons
                    target.append(Button(label=label, action="url", url=contact.url))
            if text is None:
                continue
            note = _localized(contact.note, self.language, None) if contact.note else None
            if note:
                text = f"{text} ({escape_markup(note)})"
            if isinstance(contact.hours, WeeklyHours):
                text = f"{text} ({self.hours_label(contact.hours, now)})"
            texts.append(text)
            if contact.number:
                self.copy_button(contact.number)
        if crisis and not texts:
            # A line reachable only on the web: its link is the one tap.
            for contact in contacts:
                if contact.kind == "web" and contact.url and url_allowed(contact.url):
                    self.crisis_buttons.append(Button(label=f"🔗 {org.name}", action="url", url=contact.url))
                    break
        return texts

    def contact_text(self, contact: Contact) -> str | None:
        number = escape_markup(contact.number or "")
        if contact.kind == "phone":
            return self.text("contact_phone", number=number)
        if contact.kind == "sms" and contact.keyword:
            return self.text("contact_sms", number=number, keyword=escape_markup(contact.keyword))
        if contact.kind == "sms":
            return self.text("contact_sms_any", number=number)
        if contact.kind == "whatsapp":
            return self.text("contact_whatsapp", number=number)
        return None

    def copy_button(self, number: str, *, first: bool = False) -> None:
        if any(b.copy_text == number for b in self.crisis_buttons + self.resource_buttons):
            return
        if sum(1 for b in self.crisis_buttons if b.copy_text) >= MAX_COPY_BUTTONS:
            return
        template = self.renderer.button_label("copy_template", self.language)
        label = fill(template, {"number": number}) if template else number
        button = Button(label=label, action="copy", copy_text=number)
        if first:
            self.crisis_buttons.insert(0, button)
        else:
            self.crisis_buttons.append(button)

    # --- resources --------------------------------------------------------------------------------

    def organization_cards(self, orgs: Iterable[Organization], *, now: float | None, priority: int = PRIORITY_CARDS) -> None:
        cards = []
        for org in orgs:
            if org.id in self.resources:
                continue
            choice = LineChoice(org, contacts_for(org, self.language), open_state(org.hours, now))
            cards.append(self.line_card(choice, now=now, crisis=False, description=True))
            self.note_resource(org.id)
        if cards:
            self.add(SEPARATOR.join(cards), priority=priority)

    def note_resource(self, org_id: str) -> None:
        if org_id not in self.resources:
            self.resources.append(org_id)

    # --- buttons ----------------------------------------------------------------------------------

    def step(self, button: Button) -> None:
        self.step_buttons.append(button)

    def build(self) -> Reply:
        text = fit_sections(self.sections)
        buttons: list[Button] = []
        seen: set[tuple[str, str | None, str | None, str | None]] = set()
        for button in [*self.crisis_buttons, *self.resource_buttons, *self.step_buttons]:
            key = (button.action, button.value, button.url, button.copy_text)
            if key in seen or (button.url is not None and not url_allowed(button.url)):
                continue
            seen.add(key)
            buttons.append(button)
        return Reply(text=text, buttons=tuple(buttons), resources=tuple(self.resources))


def fit_sections(sections: Sequence[Section], limit: int = TELEGRAM_TEXT_LIMIT) -> str:
    """Join sections; drop the least important unprotected ones, then cut the longest unprotected one, to fit."""
    kept = list(sections)

    def size(items: Sequence[Section]) -> int:
        raw = SEPARATOR.join(s.text for s in items)
        length = utf16_len(raw)  # markup only adds characters: when the raw text fits, the shown text does
        return length if length <= limit else utf16_len(plain_text(raw))

    while size(kept) > limit:
        droppable = [s for s in kept if not s.protected and s.priority < PRIORITY_REPLY]
        if not droppable:
            break
        lowest = min(s.priority for s in droppable)
        victim = [s for s in droppable if s.priority == lowest][-1]
        kept.remove(victim)
    if size(kept) > limit:
        cuttable = [s for s in kept if not s.protected]
        if cuttable:
            target = max(cuttable, key=lambda s: utf16_len(plain_text(s.text)))
            overflow = size(kept) - limit
            budget = max(0, utf16_len(plain_text(target.text)) - overflow)
            index = kept.index(target)
            kept[index] = Section(truncate_markup(target.text, budget), target.priority)
            if budget == 0:
                del kept[index]
    text = SEPARATOR.join(s.text for s in kept)
    if utf16_len(text) > limit and utf16_len(plain_text(text)) > limit:  # only protected text left: never expected
        text = truncate_markup(text, limit)
    return text


def _localized(values: Mapping[str, str] | None, language: str, default: str | None) -> str | None:
    if not values:
        return None
    if language in values:
        return values[language]
    if default is not None and default in values:
        return values[default]
    return None


def _distinct(contacts: Sequence[Contact]) -> list[Contact]:
    """One contact per (kind, number, keyword, url); a language-specific one wins over a neutral twin."""
    chosen: dict[tuple[str, str | None, str | None, str | None], Contact] = {}
    for contact in contacts:
        key = (contact.kind, contact.number, contact.keyword, contact.url)
        if key not in chosen or (chosen[key].languages is None and contact.languages is not None):
            chosen[key] = contact
    return list(chosen.values())


class Renderer:
    """The content's texts and buttons, looked up by id and language (built once per content load)."""

    def __init__(self, content: Content) -> None:
        self.content = content
        self.languages = tuple(content.languages)
        self.default_language = self.languages[0]
        self.region_names = {r.id: r.name for r in content.resources.regions}
        self.topic_labels = {t.id: t for t in content.resources.topics}
        self.referral_orgs = tuple(o for o in content.resources.organizations if o.referral is not None)
        self.has_section = {
            "videos": bool(content.resources.videos),
            "creators": bool(content.resources.creators),
            "organizations": any(o.kind != "directory" for o in content.resources.organizations),
            "handoff": bool(self.referral_orgs),
            "decline": bool(self.referral_orgs),
        }
        # A topic is offered only when an intent answers it (its first topic).
        # An intent named like the topic wins; else the first intent whose first topic it is.
        self.topic_intents: dict[str, str] = {}
        for located in content.intents:
            first = located.intent.topics[0]
            current = self.topic_intents.get(first)
            if current is None or (located.intent.id == first and current != first):
                self.topic_intents[first] = located.intent.id

    def region_name(self, region: str, language: str) -> str:
        names = self.region_names.get(region)
        return (_localized(names, language, self.default_language) if names else None) or region

    def language_name(self, code: str, language: str) -> str:
        for button in self.content.buttons.values():
            if button.action == "language" and button.value == code:
                return _localized(button.label, language, self.default_language) or code
        return code

    def placeholders(self, language: str, region: str) -> dict[str, str]:
        return {
            "region": escape_markup(self.region_name(region, language)),
            "language": escape_markup(self.language_name(language, language)),
            "hub": escape_markup(self.content.resources.hub.name),
        }

    def text(self, reply_id: str, language: str, region: str, **values: str) -> str | None:
        """A reply in `language` (else the default language) with its placeholders filled; None when missing."""
        return self.localized(self.content.replies.get(reply_id), language, region, **values)

    def localized(
        self, texts: Mapping[str, str] | None, language: str, region: str, *, fill_values: bool = True, **values: str
    ) -> str | None:
        template = _localized(texts, language, self.default_language)
        if template is None or not fill_values:
            return template
        known = self.placeholders(language, region)
        known.update(values)
        return fill(template, known)

    def button_label(self, button_id: str, language: str) -> str | None:
        definition = self.content.buttons.get(button_id)
        return _localized(definition.label, language, self.default_language) if definition else None

    def button(self, definition: ButtonDef, language: str, *, value: str | None = None) -> Button:
        label = _localized(definition.label, language, self.default_language) or definition.action
        return Button(label=label, action=definition.action, value=value if value is not None else definition.value)

    def offered(self, definition: ButtonDef) -> bool:
        """A button is offered only when what it leads to has something in it."""
        if definition.action in self.has_section and not self.has_section[definition.action]:
            return False
        if definition.action == "topic" and definition.value not in self.topic_intents:
            return False
        return True

    def buttons_by_ids(self, ids: Iterable[str], language: str) -> list[Button]:
        out = []
        for button_id in ids:
            definition = self.content.buttons.get(button_id)
            if definition is not None and self.offered(definition):
                out.append(self.button(definition, language))
        return out

    def button_for_action(self, action: str, language: str) -> Button | None:
        """The content's plain button for an action (no value), e.g. the menu's 'Videos' button.

        The button whose id is the action wins; the engine's own buttons (copy_template, directory,
        not_in_region, handoff_*) are never taken for a plain action button.
        """
        candidates = [(button_id, d) for button_id, d in self.content.buttons.items() if button_id not in SPECIAL_BUTTONS]
        candidates.sort(key=lambda item: 0 if item[0] == action else 1)
        for _, definition in candidates:
            if definition.action == action and definition.value is None and self.offered(definition):
                return self.button(definition, language)
        return None

    def default_steps(self, language: str, *, skip: Sequence[str] = ()) -> list[Button]:
        out = []
        for action in DEFAULT_STEP_ACTIONS:
            if action in skip:
                continue
            button = self.button_for_action(action, language)
            if button is not None:
                out.append(button)
        return out

    def topic_buttons(self, language: str) -> list[Button]:
        out = []
        for topic in self.content.resources.topics:
            if topic.id not in self.topic_intents:
                continue
            label = _localized(topic.label, language, self.default_language) or topic.id
            if topic.emoji:
                label = f"{topic.emoji} {label}"
            out.append(Button(label=label, action="topic", value=topic.id))
        return out

    def language_buttons(self, language: str) -> list[Button]:
        out = []
        for code in self.languages:
            out.append(Button(label=self.language_name(code, code), action="language", value=code))
        return out

    def region_buttons(self, language: str) -> list[Button]:
        return [
            Button(label=self.region_name(region.id, language), action="region", value=region.id)
            for region in self.content.resources.regions
        ]
