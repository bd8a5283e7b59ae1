"""Versioned ClickHouse DDL shipped as package data (``schema/NNN_name.sql``), applied in order.

Every statement is idempotent (``IF NOT EXISTS``); ``kato.schema_migrations`` records the versions applied
so a later migration that is not idempotent by itself still runs once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

DATABASE = "kato"
BOOTSTRAP = (
    f"CREATE DATABASE IF NOT EXISTS {DATABASE}",
    f"CREATE TABLE IF NOT EXISTS {DATABASE}.schema_migrations (version UInt32, "
    "applied_at DateTime DEFAULT now()) ENGINE = ReplacingMergeTree ORDER BY version",
)
_FILE_RE = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


def split_statements(text: str) -> list[str]:
    """Split a DDL file on ``;`` after dropping ``--`` comment lines (our DDL has no ``;`` in literals)."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def migrations() -> list[Migration]:
    """The shipped migrations, ordered by version."""
    found = []
    for entry in resources.files("schema").iterdir():
        match = _FILE_RE.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, tuple(split_statements(entry.read_text()))))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate schema versions: {versions}")
    return found
