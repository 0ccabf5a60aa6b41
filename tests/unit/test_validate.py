"""`hubbot validate` and `hubbot test` on a copy of the shipped content, broken one way per test.

Every test edits the copied text at one known place, computes the 1-based line it touched, runs the
command, and asserts exit code 1 and a problem reported at exactly `<dir>/<file>:<line>:`.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from bot.cli import main

ROOT = Path(__file__).resolve().parents[2]
FILES = ["resources.yaml", *sorted(f"intents/{p.name}" for p in (ROOT / "intents").glob("*.yaml"))]


# --- helpers -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped() -> dict[str, str]:
    """One snapshot of the shipped files for the whole module (stable even if they are being edited)."""
    return {name: (ROOT / name).read_text(encoding="utf-8") for name in FILES}


@dataclass
class ContentCopy:
    root: Path

    def read(self, name: str) -> str:
        return (self.root / name).read_text(encoding="utf-8")

    def write(self, name: str, text: str) -> None:
        (self.root / name).write_text(text, encoding="utf-8")

    def replace(self, name: str, old: str, new: str, *, after: str | None = None) -> int:
        """Replace the first `old` (after the first `after`, if given); return the 1-based line where `new` starts."""
        text = self.read(name)
        start = 0
        if after is not None:
            start = text.find(after)
            assert start >= 0, f"anchor {after!r} not found in {name}"
        at = text.find(old, start)
        assert at >= 0, f"{old!r} not found in {name} after {after!r}"
        edited = text[:at] + new + text[at + len(old):]
        assert edited != text
        self.write(name, edited)
        return text.count("\n", 0, at) + 1

    def delete_line(self, name: str, prefix: str, *, after: str) -> int:
        """Delete the first line starting with `prefix` after `after`; return its 1-based number."""
        line = self.line_of(name, "\n" + prefix, after=after) + 1
        lines = self.read(name).splitlines(keepends=True)
        assert lines[line - 1].startswith(prefix)
        del lines[line - 1]
        self.write(name, "".join(lines))
        return line

    def line_of(self, name: str, needle: str, *, after: str | None = None) -> int:
        text = self.read(name)
        start = text.find(after) if after is not None else 0
        assert start >= 0, f"anchor {after!r} not found in {name}"
        at = text.find(needle, start)
        assert at >= 0, f"{needle!r} not found in {name}"
        return text.count("\n", 0, at) + 1

    def where(self, name: str, line: int) -> str:
        return f"{self.root / name}:{line}:"


@pytest.fixture
def content(tmp_path: Path, shipped: dict[str, str]) -> ContentCopy:
    root = tmp_path / "content"
    (root / "intents").mkdir(parents=True)
    for name, text in shipped.items():
        (root / name).write_text(text, encoding="utf-8")
    return ContentCopy(root)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def problem_at(err: str, where: str) -> str:
    """The stderr lines reported at `where` (joined); fails listing what was reported instead."""
    hits = [line for line in err.splitlines() if line.startswith(where + " ")]
    assert hits, f"no problem reported at {where}\nstderr was:\n{err}"
    return "\n".join(hits)


def validate_fails_at(capsys: pytest.CaptureFixture[str], content: ContentCopy, name: str, line: int) -> str:
    code, _out, err = run(capsys, "validate", str(content.root))
    assert code == 1, f"validate exited {code}\nstderr:\n{err}"
    return problem_at(err, content.where(name, line))


# --- the shipped content ------------------------------------------------------------------------------


def test_shipped_content_validates(capsys: pytest.CaptureFixture[str], content: ContentCopy) -> None:
    code, out, err = run(capsys, "validate", str(content.root))
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 1, out
    assert re.match(r"^ok: \d+ intents, \d+ organisations, \d+ regions, ", lines[0]), lines[0]
    # Only warnings may appear on stderr.
    for line in err.splitlines():
        assert ": warning: " in line, line


def test_shipped_content_tests_pass(capsys: pytest.CaptureFixture[str], content: ContentCopy) -> None:
    code, out, err = run(capsys, "test", str(content.root))
    assert code == 0, err
    assert re.match(r"^ok: \d+ content tests passed$", out.strip()), out


# --- structure: YAML and schema -----------------------------------------------------------------------


def test_yaml_syntax_error(capsys: pytest.CaptureFixture[str], content: ContentCopy) -> None:
    line = content.replace("intents/safety.yaml", "  - id: suicide\n", "  - id: suicide: oops\n")
    message = validate_fails_at(capsys, content, "intents/safety.yaml", line)
    assert "YAML" in message


def test_yaml_syntax_error_subprocess(content: ContentCopy) -> None:
    line = content.replace("resources.yaml", '  name: "TikTok #MentalHealthAwareness hub"\n', "  name: TikTok: hub\n", after="\nhub:\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "validate", str(content.root)],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=60,
    )
    assert result.returncode == 1, result.stderr
    assert "YAML" in problem_at(result.stderr, content.where("resources.yaml", line))


def test_duplicate_yaml_key(capsys: pytest.CaptureFixture[str], content: ContentCopy) -> None:
    line = content.replace(
        "intents/safety.yaml", "    topics: [suicide]\n", "    topics: [suicide]\n    topics: [self_harm]\n", after="  - id: suicide\n"
    ) + 1
    message = validate_fails_at(capsys, content, "intents/safety.yaml", line)
    assert "duplicate key 'topics'" in message


def test_unknown_key_typo(capsys: pytest.CaptureFixture[str], content: ContentCopy) -> None:
    line = content.replace("resources.yaml", "    regions: [US]\n", "    regoins: [US]\n", after="  - id: 988-lifeline\n")
    message = validate_fails_at(capsys, content, "resources.yaml", line)
    assert "unknown key 'regoins'" in message


def test_wrong_type_regions_string(capsys: pytest.CaptureFixture[str], content: ContentCopy) -> None:
    line = content.replace("resources.yaml", "    regions: [US]\n", "    regions: US\n", after="  - id: 988-lifeline\n")
    message = validate_fails_at(capsys, content, "resources.yaml", line)
    assert "regions" in message


def test_wrong_type_verified_not_a_date(capsys: pytest.CaptureFixture[str], content: ContentCopy) -> None:
    line = content.replace("resources.yaml", "    verified: 2026-11-26\n", "    verified: last tuesday\n", after="  - id: 988-lifeline\n")
    message = validate_fails_at(capsys, content, "resources.yaml", line)
    assert "verified" in message


def test_impossible_verified_date(capsys: pytest.CaptureFixture[str], content: ContentCopy) -> None:
    # Looks like a YAML date but is not one: must be a path:line problem, not a crash.
    line = content.replace("resources.yaml", "    verified: 2026-11-26\n", "    verified: 2026-02-30\n", after="  - id: 988-lifeline\n")
    validate_fails_at(capsys, content, "resources.yaml", line)


def test_contact_without_source(capsys: pytest.CaptureFixture[str], content: ContentCopy) -> None:
    anchor = "  - id: trevor-project\n"
    contact = content.line_of("resources.yaml", "      - kind: phone\n", after=anchor)
    removed = content.delete_line("resources.yaml", "        source: ", after=anchor)
    assert removed > contact
    message = validate_fails_at(capsys, content, "resources.yaml", contact)
    assert "source" in message


def test_contact_without_verified(capsys: pytest.CaptureFixture[str], content: ContentCopy) -> None:
    anchor = "  - id: samaritans\n"
    contact = content.line_of("resources.yaml", "      - kind: phone\n", after=anchor)
    removed = content.delete_line("resources.yaml", "        verified: ", after=anchor)
    assert removed > contact
    message = validate_fails_at(capsys, content, "resources.yaml", contact)
    assert "verified" in message


# --- references and coverage --------------------------------------------------------------------------


def test_duplicate_organisation_id(capsys: pytest.CaptureFixture[str], content: ContentCopy) -> None:
    line = content.replace("resources.yaml", "  - id: crisis-text-line\n", "  - id: 988-lifeline\n")
    message = validate_fails_at(capsys, content, "resources.yaml", line)
    assert "duplicate" in message and "988-lifeline" in message


def test_unknown_topic_in_intent_suggests(capsys: pytest.CaptureFixture[str], content: ContentCopy) -> None:
    line = content.replace("intents/safety.yaml", "    topics: [suicide]\n", "    topics: [suicde]\n", after="  - id: suicide\n")
    message = validate_fails_at(capsys, content, "intents/safety.yaml", line)
    assert "suicde" in message
    assert "did you mean 'suicide'" in message


def test_unknown_resource_id_in_intent(capsys: pytest.CaptureFixture[str], content: ContentCopy) -> None:
    line = content.replace(
        "intents/safety.yaml", "    resources: {topics: [suicide]}\n", "    resources: {topics: [suicide], ids: [988-lifelin]}\n",
        after="  - id: suicide\n",
    )
    message = validate_fails_at(capsys, content, "intents/safety.yaml", line)
    assert "988-lifelin" in message


def test_unknown_reply_in_escalation_rule(capsys: pytest.CaptureFixture[str], content: ContentCopy) -> None:
    line = content.replace("intents/escalation.yaml", "reply: crisis_self,", "reply: crisis_slef,", after="  - id: high_self\n")
    message = validate_fails_at(capsys, content, "intents/escalation.yaml", line)
    assert "crisis_slef" in message


def test_example_in_two_intents(capsys: pytest.CaptureFixture[str], content: ContentCopy) -> None:
    example = '        - "how do i cope with suicidal thoughts"\n'
    assert content.line_of("intents/safety.yaml", example, after="  - id: suicide\n")
    line = content.replace("intents/safety.yaml", "      en:\n", "      en:\n" + example, after="  - id: self_harm\n") + 1
    message = validate_fails_at(capsys, content, "intents/safety.yaml", line)
    assert "suicide" in message


def test_region_without_crisis_line(capsys: pytest.CaptureFixture[str], content: ContentCopy) -> None:
    mx = '  - id: MX\n    name: {en: "Mexico", es: "México"}\n'
    line = content.replace("resources.yaml", mx, mx + '  - id: NZ\n    name: {en: "New Zealand", es: "Nueva Zelanda"}\n') + 2
    message = validate_fails_at(capsys, content, "resources.yaml", line)
    assert "NZ" in message and "24/7 crisis line" in message


def test_dead_number(capsys: pytest.CaptureFixture[str], content: ContentCopy) -> None:
    dead = yaml.safe_load(content.read("resources.yaml"))["dead_numbers"][0]["number"]
    line = content.replace("resources.yaml", '        number: "1-866-488-7386"\n', f'        number: "{dead}"\n', after="  - id: trevor-project\n")
    message = validate_fails_at(capsys, content, "resources.yaml", line)
    assert "dead" in message


# --- reply texts -------------------------------------------------------------------------------------


def test_reply_missing_language(capsys: pytest.CaptureFixture[str], content: ContentCopy) -> None:
    anchor = "  - id: suicide\n"
    reply = content.line_of("intents/safety.yaml", "    reply:\n", after=anchor)
    removed = content.delete_line("intents/safety.yaml", '      es: "Gracias por hablar de esto', after=anchor)
    assert removed == reply + 2
    message = validate_fails_at(capsys, content, "intents/safety.yaml", reply)
    assert "'es'" in message


def test_reply_commit_suicide(capsys: pytest.CaptureFixture[str], content: ContentCopy) -> None:
    anchor = "  - id: suicide\n"
    line = content.line_of("intents/safety.yaml", "    reply:\n", after=anchor) + 1
    edited = content.replace("intents/safety.yaml", "Thoughts of suicide can feel", "Wanting to commit suicide can feel", after=anchor)
    assert edited == line
    message = validate_fails_at(capsys, content, "intents/safety.yaml", line)
    assert "commit_suicide" in message


def test_reply_method_detail(capsys: pytest.CaptureFixture[str], content: ContentCopy) -> None:
    line = content.replace(
        "intents/escalation.yaml", '    en: "I\'m still here.', '    en: "I\'m still here. If you took an overdose, get help now.', after="  crisis_followup:\n"
    )
    message = validate_fails_at(capsys, content, "intents/escalation.yaml", line)
    assert "method_detail" in message


@pytest.mark.parametrize("long_text", ["x" * 4100, "\U0001FAC2" * 2049], ids=["ascii", "utf16-surrogates"])
def test_reply_too_long(capsys: pytest.CaptureFixture[str], content: ContentCopy, long_text: str) -> None:
    line = content.replace("intents/escalation.yaml", '    en: "I\'m still here.', f'    en: "{long_text} I\'m still here.', after="  crisis_followup:\n")
    message = validate_fails_at(capsys, content, "intents/escalation.yaml", line)
    assert "4096" in message


# --- patterns and `hubbot test` ----------------------------------------------------------------------


def test_pattern_does_not_compile(capsys: pytest.CaptureFixture[str], content: ContentCopy) -> None:
    line = content.replace("intents/escalation.yaml", '      - "catch the bus"\n', '      - "(catch the bus"\n')
    message = validate_fails_at(capsys, content, "intents/escalation.yaml", line)
    assert "catch the bus" in message


def test_wrong_expected_risk_in_escalation_tests(capsys: pytest.CaptureFixture[str], content: ContentCopy) -> None:
    name = "intents/escalation.yaml"
    lines = content.read(name).splitlines(keepends=True)
    start = lines.index("tests:\n")
    end = start + 1
    while end < len(lines) and (lines[end].startswith(" ") or not lines[end].strip()):
        end += 1
    while not lines[end - 1].strip():
        end -= 1
    assert lines[end - 1].startswith("  - {"), lines[end - 1]
    lines.insert(end, '  - {text: "i want to die", risk: none}\n')
    content.write(name, "".join(lines))
    row = end + 1
    code, _out, err = run(capsys, "test", str(content.root))
    assert code == 1, err
    message = problem_at(err, content.where(name, row))
    assert "expected none, got high" in message
