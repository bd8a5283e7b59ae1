"""``--check metric<=value`` / ``metric>=value`` thresholds on the results document."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

CHECK = re.compile(r"^\s*(?P<metric>[A-Za-z0-9_.\-]+)\s*(?P<op><=|>=)\s*(?P<value>[-+0-9.eE]+)\s*$")


@dataclass(frozen=True)
class Check:
    metric: str
    op: str
    value: float

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.value:g}"


def parse_check(text: str) -> Check:
    """``"predictions.p50_ms<=25"`` → ``Check("predictions.p50_ms", "<=", 25.0)``; ValueError otherwise."""
    match = CHECK.match(text)
    if match is None:
        raise ValueError(f"bad check {text!r}: expected metric<=value or metric>=value")
    return Check(match["metric"], match["op"], float(match["value"]))


def resolve(results: Any, metric: str) -> Any:
    """The value at a dotted path; integer parts index lists (``sizes.0.ingest.patterns_per_s``)."""
    value = results
    for part in metric.split("."):
        if isinstance(value, list) and part.lstrip("-").isdigit():
            value = value[int(part)]
        elif isinstance(value, dict):
            value = value[part]
        else:
            raise KeyError(part)
    return value


def failed_checks(results: dict[str, Any], checks: Sequence[Check]) -> list[str]:
    """A message for every check that does not hold (a missing or non-numeric metric fails too)."""
    failures = []
    for check in checks:
        try:
            value = resolve(results, check.metric)
        except (KeyError, IndexError):
            failures.append(f"{check}: no metric {check.metric!r} in the results")
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            failures.append(f"{check}: {check.metric} is {value!r}, not a number")
            continue
        holds = value <= check.value if check.op == "<=" else value >= check.value
        if not holds:
            failures.append(f"{check}: measured {value:g}")
    return failures
