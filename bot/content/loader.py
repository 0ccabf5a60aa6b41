"""Load a content directory into one immutable Content, or a list of `path:line: message` problems."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from bot.content.models import ButtonDef, Escalation, Intent, IntentFile, Lexicon, Localized, Resources
from bot.content.yaml_source import SourceFile, YamlSyntaxError, read_yaml

ESCALATION_FILE = "escalation.yaml"
LEXICON_FILE = "lexicon.yaml"

Model = TypeVar("Model", bound=BaseModel)


@dataclass(frozen=True, order=True)
class Problem:
    path: str
    line: int
    message: str
    warning: bool = False

    def __str__(self) -> str:
        prefix = "warning: " if self.warning else ""
        return f"{self.path}:{self.line}: {prefix}{self.message}"


class ContentError(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass(frozen=True)
class LocatedIntent:
    intent: Intent
    file: SourceFile
    index: int


@dataclass(frozen=True)
class Content:
    """Everything the bot knows, validated. Built once per load; never mutated."""

    directory: Path
    resources: Resources
    escalation: Escalation
    lexicon: Lexicon
    intents: tuple[LocatedIntent, ...]
    replies: dict[str, Localized]
    buttons: dict[str, ButtonDef]
    files: dict[str, SourceFile] = field(repr=False)
    digest: str = ""

    def intent(self, intent_id: str) -> Intent | None:
        return next((li.intent for li in self.intents if li.intent.id == intent_id), None)

    @property
    def languages(self) -> list[str]:
        return list(self.resources.languages)


def _display_path(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root.parent)) if root.name == "intents" else str(path.relative_to(root))
    except ValueError:
        return str(path)


def _parse(model: type[Model], source: SourceFile, shown: str, problems: list[Problem]) -> Model | None:
    try:
        return model.model_validate(source.data)
    except ValidationError as error:
        for item in error.errors(include_input=False, include_url=False):
            location = tuple(part for part in item["loc"] if not (isinstance(part, str) and _is_union_tag(part)))
            where = ".".join(str(part) for part in location) or "(top level)"
            message = item["msg"]
            if item["type"] == "extra_forbidden":
                message = f"unknown key '{location[-1]}'"
                where = ".".join(str(part) for part in location[:-1]) or "(top level)"
            problems.append(Problem(shown, source.line_of(location), f"{where}: {message}"))
        return None


def _is_union_tag(part: str) -> bool:
    # pydantic names union branches in error locations ("WeeklyHours", "literal['24/7']"); they are not keys.
    return part[:1].isupper() or part.startswith(("literal[", "function-"))


def _read(path: Path, shown: str, problems: list[Problem]) -> SourceFile | None:
    try:
        return read_yaml(path)
    except YamlSyntaxError as error:
        problems.append(Problem(shown, error.line, error.message))
        return None


def load_content(directory: Path | str) -> Content:
    """Parse and schema-check every file; raise ContentError listing all problems found."""
    root = Path(directory)
    problems: list[Problem] = []
    resources_path = root / "resources.yaml"
    intents_dir = root / "intents"
    if not resources_path.is_file():
        raise ContentError([Problem(str(resources_path), 1, "missing resources.yaml")])
    if not intents_dir.is_dir():
        raise ContentError([Problem(str(intents_dir), 1, "missing intents/ directory")])

    files: dict[str, SourceFile] = {}
    digest = hashlib.sha256()
    for path in [resources_path, *sorted(intents_dir.glob("*.yaml"))]:
        shown = str(path.relative_to(root))
        digest.update(shown.encode() + b"\0" + path.read_bytes())
        source = _read(path, shown, problems)
        if source is not None:
            files[shown] = source

    resources = _parse(Resources, files["resources.yaml"], "resources.yaml", problems) if "resources.yaml" in files else None
    escalation_key = f"intents/{ESCALATION_FILE}"
    lexicon_key = f"intents/{LEXICON_FILE}"
    escalation = _parse(Escalation, files[escalation_key], escalation_key, problems) if escalation_key in files else None
    if escalation_key not in files and not any(p.path == escalation_key for p in problems):
        problems.append(Problem(escalation_key, 1, "missing escalation.yaml (risk vocabulary and rules)"))
    lexicon = _parse(Lexicon, files[lexicon_key], lexicon_key, problems) if lexicon_key in files else Lexicon()

    intents: list[LocatedIntent] = []
    replies: dict[str, Localized] = {}
    buttons: dict[str, ButtonDef] = {}
    seen_reply: dict[str, str] = {}
    seen_button: dict[str, str] = {}

    def collect(shown: str, source: SourceFile, new_replies: dict[str, Any], new_buttons: dict[str, Any]) -> None:
        for reply_id, text in new_replies.items():
            if reply_id in seen_reply:
                problems.append(Problem(shown, source.line_of(("replies", reply_id)), f"reply '{reply_id}' is also defined in {seen_reply[reply_id]}"))
            seen_reply[reply_id] = shown
            replies[reply_id] = text
        for button_id, button in new_buttons.items():
            if button_id in seen_button:
                problems.append(Problem(shown, source.line_of(("buttons", button_id)), f"button '{button_id}' is also defined in {seen_button[button_id]}"))
            seen_button[button_id] = shown
            buttons[button_id] = button

    if escalation is not None:
        collect(escalation_key, files[escalation_key], escalation.replies, escalation.buttons)
    for shown, source in files.items():
        if not shown.startswith("intents/") or shown in (escalation_key, lexicon_key):
            continue
        parsed = _parse(IntentFile, source, shown, problems)
        if parsed is None:
            continue
        intents.extend(LocatedIntent(intent, source, index) for index, intent in enumerate(parsed.intents))
        collect(shown, source, parsed.replies, parsed.buttons)

    if problems or resources is None or escalation is None:
        raise ContentError(problems)
    return Content(
        directory=root,
        resources=resources,
        escalation=escalation,
        lexicon=lexicon,
        intents=tuple(intents),
        replies=replies,
        buttons=buttons,
        files=files,
        digest=digest.hexdigest()[:16],
    )
