"""`hubbot schema` prints JSON Schema of the content files; `hubbot validate --verbose` reports the load time."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bot.cli import main

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_KEYS = {"resources.yaml", "intents/*.yaml", "intents/escalation.yaml", "intents/lexicon.yaml"}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_schema_prints_json_for_the_four_files(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _err = run(capsys, "schema")
    assert code == 0
    schemas = json.loads(out)
    assert set(schemas) == SCHEMA_KEYS
    for name, schema in schemas.items():
        assert schema.get("type") == "object", name
        assert schema.get("properties"), name
    resources = schemas["resources.yaml"]
    assert "organizations" in resources["properties"]
    assert "organizations" in resources.get("required", [])
    assert "intents" in schemas["intents/*.yaml"]["properties"]
    assert {"signals", "rules", "tests"} <= set(schemas["intents/escalation.yaml"]["properties"])
    assert "entries" in schemas["intents/lexicon.yaml"]["properties"]


def test_schema_of_one_file(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _err = run(capsys, "schema", "resources.yaml")
    assert code == 0
    schema = json.loads(out)
    assert "organizations" in schema["properties"]
    assert "Organization" in json.dumps(schema)


def test_schema_rejects_unknown_file(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["schema", "nonsense.yaml"])
    assert raised.value.code == 2


def test_validate_verbose_prints_load_time(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "validate", "--verbose", str(ROOT))
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 2, out
    assert lines[0].startswith("ok: ")
    assert re.fullmatch(r"loaded in \d+(\.\d+)? ms \(content hash [0-9a-f]{16}\)", lines[1]), lines[1]

