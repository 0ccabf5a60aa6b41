"""Choose which organisations to show: crisis lines for the region and language, topic organisations, the directory."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.content.loader import Content
from bot.content.models import Contact, EmergencyNumber, Hours, Organization, WeeklyHours

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ANY_REGION = "*"
MAX_CRISIS_LINES = 3
MAX_TOPIC_ORGS = 3
TOPIC_ORG_KINDS = ("helpline", "organization", "crisis_line")


@dataclass(frozen=True)
class LineChoice:
    """An organisation to show, the contacts that suit the person, and whether it is open now."""

    org: Organization
    contacts: tuple[Contact, ...]
    open_now: bool | None  # None: 24/7 or no hours known


@dataclass(frozen=True)
class CrisisBlock:
    lines: tuple[LineChoice, ...]  # 24/7 first, then open, then closed
    directory: Organization | None
    emergency: EmergencyNumber | None


def _minutes(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def is_open(hours: WeeklyHours, now: float) -> bool | None:
    """Whether `hours` are open at unix time `now`; None when the time zone is unknown."""
    try:
        zone = ZoneInfo(hours.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    local = dt.datetime.fromtimestamp(now, tz=zone)
    minute = local.hour * 60 + local.minute
    today = _DAYS[local.weekday()]
    yesterday = _DAYS[(local.weekday() - 1) % 7]
    for item in hours.open.get(today, []):
        start_text, end_text = item.split("-")
        start, end = _minutes(start_text), _minutes(end_text)
        if end > start and start <= minute < end:
            return True
        if end <= start and minute >= start:  # runs past midnight
            return True
    for item in hours.open.get(yesterday, []):
        start_text, end_text = item.split("-")
        start, end = _minutes(start_text), _minutes(end_text)
        if end <= start and minute < end:
            return True
    return False


def open_state(hours: Hours | None, now: float | None) -> bool | None:
    """Open now (True), closed now (False), or None: 24/7, no hours known, or no time given."""
    if now is None or hours is None or hours == "24/7" or not isinstance(hours, WeeklyHours):
        return None
    return is_open(hours, now)


def contact_suits(contact: Contact, org: Organization, language: str) -> bool:
    languages = contact.languages if contact.languages is not None else org.languages
    return language in languages


def contacts_for(org: Organization, language: str) -> tuple[Contact, ...]:
    """The contacts in the person's language; all language-neutral ones when none is."""
    suited = tuple(c for c in org.contacts if contact_suits(c, org, language))
    if suited:
        return suited
    return tuple(c for c in org.contacts if c.languages is None)


def serves_region(org: Organization, region: str, *, allow_any: bool) -> bool:
    return region in org.regions or (allow_any and ANY_REGION in org.regions)


def _line_order(choice: LineChoice) -> tuple[int, int]:
    if choice.org.is_24_7:
        rank = 0
    elif choice.open_now is None or choice.open_now:
        rank = 1
    else:
        rank = 2
    return (rank, 0)


def crisis_lines(content: Content, region: str, language: str, now: float | None) -> tuple[LineChoice, ...]:
    """Crisis lines for the region (a `*` region never counts), in the person's language when there are any."""
    in_region = [o for o in content.resources.organizations if o.kind == "crisis_line" and region in o.regions]
    spoken = [o for o in in_region if language in o.languages or any(c.languages and language in c.languages for c in o.contacts)]
    chosen = spoken or in_region
    choices = [LineChoice(o, contacts_for(o, language), open_state(o.hours, now)) for o in chosen]
    choices = [c for c in choices if c.contacts]
    choices.sort(key=_line_order)  # stable: YAML order within each rank
    shown = choices[:MAX_CRISIS_LINES]
    return tuple(shown)


def directory(content: Content, language: str) -> Organization | None:
    directories = [o for o in content.resources.organizations if o.kind == "directory"]
    for org in directories:
        if language in org.languages:
            return org
    return directories[0] if directories else None


def directory_url(org: Organization) -> str | None:
    for contact in org.contacts:
        if contact.kind in ("web", "chat") and contact.url:
            return contact.url
    return None


def emergency_number(content: Content, region: str) -> EmergencyNumber | None:
    return next((e for e in content.resources.emergency_numbers if e.region == region), None)


def crisis_block(content: Content, region: str, language: str, now: float | None) -> CrisisBlock:
    return CrisisBlock(
        lines=crisis_lines(content, region, language, now),
        directory=directory(content, language),
        emergency=emergency_number(content, region),
    )


def topic_organizations(
    content: Content,
    topics: Iterable[str],
    region: str,
    language: str,
    *,
    exclude: Sequence[str] = (),
    ids: Sequence[str] = (),
    limit: int = MAX_TOPIC_ORGS,
) -> tuple[Organization, ...]:
    """Organisations named by id, then those for the topics, serving the region (or `*`) in the language."""
    wanted = set(topics)
    by_id = {o.id: o for o in content.resources.organizations}
    chosen: list[Organization] = []
    for org_id in ids:
        org = by_id.get(org_id)
        if org is not None and org.id not in exclude and org.kind != "directory":
            chosen.append(org)
    for org in content.resources.organizations:
        if org in chosen or org.id in exclude or org.kind not in TOPIC_ORG_KINDS:
            continue
        if wanted.intersection(org.topics) and serves_region(org, region, allow_any=True) and language in org.languages:
            chosen.append(org)
    return tuple(chosen[:limit])


def region_organizations(content: Content, region: str, language: str) -> tuple[Organization, ...]:
    """Every organisation that serves the region (or everywhere) in the language: crisis lines first."""
    orgs = [
        o
        for o in content.resources.organizations
        if o.kind != "directory" and serves_region(o, region, allow_any=True) and language in o.languages
    ]
    orgs.sort(key=lambda o: 0 if o.kind == "crisis_line" and region in o.regions else 1)
    return tuple(orgs)


def referral_organizations(content: Content, region: str, language: str) -> tuple[Organization, ...]:
    """Organisations that take referrals (the shipped content has none) for this region and language."""
    return tuple(
        o
        for o in content.resources.organizations
        if o.referral is not None and serves_region(o, region, allow_any=True) and language in o.languages
    )
