"""Read a YAML file into plain data plus a map from each value's path to its line number."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
import re
from typing import Any

import yaml

PathKey = tuple[Any, ...]


class YamlSyntaxError(Exception):
    def __init__(self, path: Path, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}")
        self.path = path
        self.line = line
        self.message = message


@dataclass(frozen=True)
class SourceFile:
    """Parsed YAML data and where each part of it sits in the file (1-based lines)."""

    path: Path
    data: Any
    lines: dict[PathKey, int] = field(default_factory=dict)

    def line_of(self, key: PathKey) -> int:
        """Line of `key`, or of its nearest ancestor that has one (a missing field points at its parent)."""
        key = tuple(key)
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key[:-1]
        return self.lines.get((), 1)


_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _UniqueKeyLoader(_BaseLoader):  # type: ignore[valid-type,misc]
    """SafeLoader with YAML 1.2 booleans: only true/false are booleans, so "no", "off" and "on" stay words."""


_UniqueKeyLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in _BaseLoader.yaml_implicit_resolvers.items()
}
_UniqueKeyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _construct(loader: yaml.SafeLoader, node: yaml.Node, path: PathKey, lines: dict[PathKey, int], file: Path) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if key in result:
                raise YamlSyntaxError(file, key_node.start_mark.line + 1, f"duplicate key '{key}'")
            result[key] = _construct(loader, value_node, path + (key,), lines, file)
            lines[path + (key,)] = key_node.start_mark.line + 1
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_construct(loader, item, path + (index,), lines, file) for index, item in enumerate(node.value)]
    try:
        return loader.construct_object(node, deep=True)
    except (ValueError, TypeError, OverflowError) as error:
        # e.g. "verified: 2026-02-30": PyYAML raises a plain ValueError with no position.
        raise YamlSyntaxError(file, node.start_mark.line + 1, f"bad value '{node.value}': {error}") from None


def read_yaml(path: Path) -> SourceFile:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise YamlSyntaxError(path, 1, f"not UTF-8 text ({error.reason})") from None
    loader = _UniqueKeyLoader(text)
    try:
        root = loader.get_single_node()
        lines: dict[PathKey, int] = {}
        data = {} if root is None else _construct(loader, root, (), lines, path)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark else 1
        opened = ""
        if error.context_mark and error.problem_mark and error.context_mark.line != error.problem_mark.line:
            opened = f" ({error.context} at line {error.context_mark.line + 1})"
        raise YamlSyntaxError(path, line, f"YAML syntax: {error.problem or error.context}{opened}") from None
    except yaml.YAMLError as error:
        raise YamlSyntaxError(path, 1, f"YAML syntax: {error}") from None
    finally:
        loader.dispose()
    return SourceFile(path=path, data=data, lines=lines)
