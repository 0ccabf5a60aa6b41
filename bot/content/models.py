"""The schema of everything a maintainer edits: resources.yaml, intents/*.yaml, escalation.yaml, lexicon.yaml.

Models are frozen and reject unknown keys, so a typo in a key is an error with a file and line, not a
silently ignored setting. Cross-file checks (references, coverage, safety lint) live in `validate.py`.
"""

from __future__ import annotations

import datetime as dt
import re
from enum import IntEnum
from typing import Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

LanguageCode = str  # "en", "es": the set is declared in resources.yaml `languages:`
Localized = dict[LanguageCode, str]
ID_PATTERN = r"^[a-z0-9][a-z0-9_\-]*$"
REGION_PATTERN = r"^([A-Z]{2}|\*)$"
HOURS_RANGE = re.compile(r"^([01]\d|2[0-4]):[0-5]\d-([01]\d|2[0-4]):[0-5]\d$")


class RiskLevel(IntEnum):
    NONE = 0
    CONCERN = 1
    HIGH = 2
    IMMINENT = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, value: str | int | RiskLevel) -> RiskLevel:
        if isinstance(value, RiskLevel):
            return value
        if isinstance(value, int):
            return cls(value)
        return cls[value.upper()]


RiskName = Literal["none", "concern", "high", "imminent"]
About = Literal["self", "other"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Sourced(Strict):
    """A fact that a maintainer can check: the page it came from and the day that page was read."""

    source: str = Field(min_length=8, description="URL (or URLs separated by ' ; ') the fact was read from")
    verified: dt.date = Field(description="The date the source was read")


# --- resources.yaml ---------------------------------------------------------------------------------


class Hub(Sourced):
    name: str
    url: str = Field(pattern=r"^https://")
    description: Localized


class Topic(Strict):
    id: str = Field(pattern=ID_PATTERN)
    label: Localized
    emoji: str = ""


class Region(Strict):
    id: str = Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2")
    name: Localized


class WeeklyHours(Strict):
    """Opening hours in a time zone; days missing from `open` are closed."""

    timezone: str = Field(description="IANA time zone, e.g. America/New_York")
    open: dict[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"], list[str]]
    label: Localized = Field(description="How the hours are shown, e.g. 'weekdays 10am-10pm ET'")

    @field_validator("open")
    @classmethod
    def _ranges(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for day, ranges in value.items():
            for item in ranges:
                if not HOURS_RANGE.match(item):
                    raise ValueError(f"{day}: '{item}' is not a range like '10:00-22:00'")
        return value


Hours = Union[Literal["24/7"], WeeklyHours]

ContactKind = Literal["phone", "sms", "chat", "whatsapp", "web"]


class Contact(Sourced):
    """One way to reach an organisation. Phones and SMS keywords are shown as text; links become buttons."""

    kind: ContactKind
    number: str | None = Field(default=None, pattern=r"^[0-9A-Z+*#][0-9A-Z +\-*#()]*$")
    keyword: str | None = Field(default=None, description="SMS keyword, e.g. HOME for 741741")
    url: str | None = Field(default=None, pattern=r"^(https://|tg://)")
    languages: list[LanguageCode] | None = Field(default=None, description="Only for these languages (default: all of the organisation's)")
    note: Localized | None = Field(default=None, description="e.g. 'press 2 for Spanish'")
    hours: Hours | None = None

    @model_validator(mode="after")
    def _fields_for_kind(self) -> Contact:
        needs = {"phone": ("number",), "sms": ("number",), "whatsapp": ("number",), "chat": ("url",), "web": ("url",)}
        for field in needs[self.kind]:
            if getattr(self, field) is None:
                raise ValueError(f"a {self.kind} contact needs '{field}'")
        if self.keyword is not None and self.kind != "sms":
            raise ValueError("'keyword' belongs to an sms contact")
        return self


class ReferralConfig(Strict):
    """How a partner receives referrals. Shipped content has none; see examples/."""

    channel: Literal["webhook", "telegram"]
    url: str | None = Field(default=None, pattern=r"^https?://")
    secret_env: str | None = Field(default=None, description="Env var holding the signing secret")
    staff_chat_id: int | None = None
    staff_ids: list[int] = []
    ack_within_minutes: int = Field(default=60, ge=1)
    fallback: Literal["webhook", "telegram"] | None = None
    fields: list[Literal["alias", "contact_method", "topic", "risk", "language", "region"]] = ["topic", "risk", "language", "region"]
    next_step: Localized
    live: bool = False
    live_media: bool = Field(default=False, description="In a live conversation, pass the person's photos, voice notes and stickers to the staff topic (text is always passed)")


OrgKind = Literal["crisis_line", "helpline", "organization", "directory", "emergency"]


class Organization(Sourced):
    id: str = Field(pattern=ID_PATTERN)
    name: str
    kind: OrgKind
    description: Localized
    regions: list[str] = Field(min_length=1)
    languages: list[LanguageCode] = Field(min_length=1)
    topics: list[str] = []
    hours: Hours | None = None
    contacts: list[Contact] = []
    referral: ReferralConfig | None = None

    @field_validator("regions")
    @classmethod
    def _regions(cls, value: list[str]) -> list[str]:
        for region in value:
            if not re.match(REGION_PATTERN, region):
                raise ValueError(f"'{region}' is not an ISO 3166 alpha-2 code or '*'")
        return value

    @property
    def is_24_7(self) -> bool:
        return self.hours == "24/7"


class EmergencyNumber(Sourced):
    region: str = Field(pattern=r"^[A-Z]{2}$")
    number: str = Field(pattern=r"^[0-9]+$")
    note: Localized | None = None


class Creator(Strict):
    id: str = Field(pattern=ID_PATTERN)
    display_name: str
    handle: str = Field(pattern=r"^@")
    url: str = Field(pattern=r"^https://")
    topics: list[str] = []
    bio: Localized | None = None
    bio_source: str | None = Field(default=None, description="Required when `bio` is set: no unsourced facts about real people")
    source: str
    verified: dt.date

    @model_validator(mode="after")
    def _bio_is_sourced(self) -> Creator:
        if self.bio and not self.bio_source:
            raise ValueError("a bio needs 'bio_source'")
        return self


class Video(Strict):
    id: str = Field(pattern=ID_PATTERN)
    title: str
    url: str = Field(pattern=r"^https://")
    topics: list[str] = []
    creator: str | None = None
    language: LanguageCode
    source: str
    verified: dt.date


class DeadNumber(Strict):
    """A number that must never be shipped again (e.g. the NEDA helpline, closed in 2023)."""

    number: str
    reason: str
    source: str


class Resources(Strict):
    languages: list[LanguageCode] = Field(min_length=1)
    hub: Hub
    topics: list[Topic]
    regions: list[Region]
    organizations: list[Organization]
    emergency_numbers: list[EmergencyNumber] = []
    videos: list[Video] = []
    creators: list[Creator] = []
    dead_numbers: list[DeadNumber] = []


# --- intents/*.yaml ---------------------------------------------------------------------------------

ButtonAction = Literal[
    "sos", "menu", "talk", "videos", "creators", "organizations", "hub", "topic", "language", "region",
    "privacy", "forget", "help", "handoff", "decline", "stop",
]


class ButtonDef(Strict):
    label: Localized
    action: ButtonAction
    value: str | None = Field(default=None, description="topic id for 'topic', org id for 'handoff', region or language code")


class ResourceSelection(Strict):
    topics: list[str] = []
    ids: list[str] = []


class IntentTests(Strict):
    match: list[str] = []
    no_match: list[str] = []


class Intent(Strict):
    id: str = Field(pattern=ID_PATTERN)
    topics: list[str] = Field(min_length=1)
    examples: dict[LanguageCode, list[str]]
    keywords: dict[LanguageCode, list[str]] = Field(default_factory=dict, description="Words or short phrases that on their own point to this intent")
    reply: Localized
    resources: ResourceSelection = ResourceSelection()
    buttons: list[str] = []
    tests: IntentTests = IntentTests()


class IntentFile(Strict):
    intents: list[Intent] = []
    replies: dict[str, Localized] = {}
    buttons: dict[str, ButtonDef] = {}


# --- intents/lexicon.yaml ---------------------------------------------------------------------------


class LexiconEntry(Strict):
    forms: list[str] = Field(min_length=1, description="Single tokens as people type them: kms, unalive, sewerslide")
    means: str = Field(description="What the risk and intent vocabularies see instead")
    lang: Literal["en", "es", "any"] = "any"


class Lexicon(Strict):
    entries: list[LexiconEntry] = []


# --- intents/escalation.yaml ------------------------------------------------------------------------


class Signal(Strict):
    """A phrase family that raises risk. Patterns use the small syntax documented in escalation.yaml."""

    id: str = Field(pattern=ID_PATTERN)
    level: Literal["concern", "high", "imminent"]
    about: Literal["self", "other", "auto"] = "auto"
    topics: list[str] = []
    patterns: list[str] = Field(min_length=1)
    softened_by_laughter: bool = Field(default=False, description="Laughter right after it ('kms lol', 'me quiero morir jaja') makes it concern, not high")


class Modifier(Strict):
    """Plan, means, time or goodbye: raises a self-harm signal in the same message to imminent."""

    id: str = Field(pattern=ID_PATTERN)
    kind: Literal["plan", "means", "time"]
    patterns: list[str] = Field(min_length=1)


class Mask(Strict):
    """A span that is not what it looks like. Its words are removed before signals are searched.

    idiom: hyperbole ("this exam is killing me") - no risk.
    denial: "I'm not suicidal" - at most concern, crisis lines as a footer.
    report: "someone told me to kys" - bullying, concern.
    """

    id: str = Field(pattern=ID_PATTERN)
    kind: Literal["idiom", "denial", "report"]
    topics: list[str] = []
    patterns: list[str] = Field(min_length=1)


class Subjects(Strict):
    """Words that say who a statement is about; the nearest one before a signal decides."""

    self: list[str]
    other: list[str]
    boundaries: list[str] = Field(default_factory=list, description="Words that end a clause when looking back for a subject")


class ConcernCount(Strict):
    at_least: int = Field(ge=1)
    within_turns: int = Field(ge=1)


class RuleWhen(Strict):
    risk: list[RiskName] | None = None
    about: About | None = None
    denial: bool | None = None
    intent: list[str] | None = None
    command: list[str] | None = None
    in_crisis_mode: bool | None = None
    concern_count: ConcernCount | None = None
    topics: list[str] | None = Field(default=None, description="Matches when the risk signals or the intent carry one of these topics")


class CrisisModeSpec(Strict):
    turns: int = Field(ge=1)
    minutes: int = Field(ge=1)


class RuleDo(Strict):
    reply: str = Field(description="A reply id, or 'intent' for the matched intent's own reply")
    fallback_reply: str | None = Field(default=None, description="With reply 'intent': the reply when no intent matched")
    crisis_lines: Literal["none", "footer", "first"] = "none"
    emergency_number: bool = False
    offer_handoff: bool = False
    crisis_mode: CrisisModeSpec | None = None
    notify_staff: bool = False
    topics: list[str] = Field(default_factory=list, description="Extra resource topics, e.g. helping_someone")
    buttons: list[str] = []


class EscalationRule(Strict):
    id: str = Field(pattern=ID_PATTERN)
    when: RuleWhen = RuleWhen()
    do: RuleDo


class LintRule(Strict):
    """A safe-messaging check on every reply text (regex, case-insensitive)."""

    id: str = Field(pattern=ID_PATTERN)
    pattern: str
    message: str
    source: str

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        re.compile(value)
        return value


class RiskTest(Strict):
    text: str
    risk: RiskName
    about: About | None = None


class Escalation(Strict):
    terms: dict[str, list[str]] = {}
    signals: list[Signal]
    modifiers: list[Modifier] = []
    masks: list[Mask] = []
    laughter: list[str] = Field(default_factory=list, description="Words that mark a joke: jaja*, lol, 😂")
    subjects: Subjects
    rules: list[EscalationRule] = Field(min_length=1)
    lint: list[LintRule] = []
    replies: dict[str, Localized] = {}
    buttons: dict[str, ButtonDef] = {}
    tests: list[RiskTest] = []
