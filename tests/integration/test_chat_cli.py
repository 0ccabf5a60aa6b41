"""`hubbot chat` end to end: a real process on a pseudo-terminal (pexpect), and with piped stdin."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pexpect
import pytest

ROOT = Path(__file__).resolve().parents[2]
COMMAND = [sys.executable, "-m", "bot.cli", "chat"]
TIMEOUT = 60


def environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("HUBBOT_", "BOT_TOKEN"))}
    env.update(
        HUBBOT_DB=str(tmp_path / "chat.sqlite3"),
        HUBBOT_HASH_KEY="chat-test-key",
        HUBBOT_LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
        TERM="dumb",
    )
    env.update(extra)
    return env


def spawn(tmp_path: Path, *args: str) -> pexpect.spawn:
    child = pexpect.spawn(COMMAND[0], [*COMMAND[1:], *args], cwd=str(tmp_path), env=environment(tmp_path), encoding="utf-8", timeout=TIMEOUT, dimensions=(200, 200))
    return child


def button_number(transcript: str, label_fragment: str) -> str:
    """The number of the last listed button whose label contains `label_fragment`."""
    found = re.findall(r"\[(\d+)\] ([^\r\n]*)", transcript)
    matches = [number for number, label in found if label_fragment in label]
    assert matches, f"no button with {label_fragment!r} in:\n{transcript}"
    return matches[-1]


def test_a_crisis_conversation_shows_988(tmp_path: Path) -> None:
    child = spawn(tmp_path, "--region", "US")
    try:
        child.expect("you> ")  # the greeting is shown, then the prompt
        assert "bot" in child.before.lower()
        child.sendline("i dont want to be alive anymore")
        child.expect("you> ")
        reply = child.before
        assert "988" in reply and "findahelpline.com" in reply
        assert "\x1b[1m" in reply  # bold on a terminal
        child.sendline(button_number(reply, "988"))  # typing a number presses that button
        child.expect("you> ")
        assert "988" in child.before
        child.sendline("thanks")
        child.expect("you> ")
        assert "988" in child.before  # still pinned in crisis mode
        child.sendeof()
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0


def test_a_topic_conversation(tmp_path: Path) -> None:
    child = spawn(tmp_path, "--lang", "en", "--region", "GB")
    try:
        child.expect("you> ")
        child.sendline("/menu")
        child.expect("you> ")
        child.sendline(button_number(child.before, "Anxiety"))
        child.expect("you> ")
        assert "anxiety" in child.before.lower()
        assert "[1]" in child.before  # there is always a next step
        child.sendline("/quit")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0


def test_piped_stdin_ends_cleanly_at_end_of_input(tmp_path: Path) -> None:
    result = subprocess.run(
        COMMAND,
        input="I want to kill myself\n/sos\n",
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=environment(tmp_path),
        timeout=TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "988" in result.stdout and "*988*" in result.stdout  # not a terminal: markup printed as is
    assert "\x1b[" not in result.stdout
    assert "I want to kill myself" not in result.stderr  # logs never carry the text


def test_invalid_content_refuses_to_start_with_path_and_line(tmp_path: Path) -> None:
    content = tmp_path / "content"
    shutil.copytree(ROOT / "intents", content / "intents")
    shutil.copy(ROOT / "resources.yaml", content / "resources.yaml")
    (content / "intents" / "broken.yaml").write_text("intents:\n  - id: bad\n    nonsense: true\n", encoding="utf-8")
    result = subprocess.run(
        COMMAND, input="", capture_output=True, text=True, cwd=tmp_path, env=environment(tmp_path, HUBBOT_CONTENT=str(content)), timeout=TIMEOUT, check=False
    )
    assert result.returncode == 1
    assert re.search(r"broken\.yaml:\d+: ", result.stderr), result.stderr


@pytest.mark.parametrize("line", ["", "   "])
def test_blank_lines_are_ignored(tmp_path: Path, line: str) -> None:
    result = subprocess.run(COMMAND, input=f"{line}\n", capture_output=True, text=True, cwd=tmp_path, env=environment(tmp_path), timeout=TIMEOUT, check=False)
    assert result.returncode == 0
