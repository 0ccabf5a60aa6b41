"""Where the shipped content lives: in the source tree (editable install) or under <prefix>/share/hubbot (wheel)."""

from __future__ import annotations

import sys
from pathlib import Path


def default_content_dir() -> Path:
    source_tree = Path(__file__).resolve().parents[2]
    if (source_tree / "resources.yaml").is_file():
        return source_tree
    return Path(sys.prefix) / "share" / "hubbot"
