"""Which requests are about a session (spec §4.1: their unknown sessions are 404s)."""

from __future__ import annotations

import re

SESSION_PATH = re.compile(r"^/sessions/(?P<sid>[^/]+)(?P<rest>/.*)?$")
NOT_A_SESSION = frozenset({"count"})


def session_of(path: str) -> str | None:
    """The session id a path addresses (``/sessions/{id}`` and below), or None."""
    match = SESSION_PATH.match(path)
    return match.group("sid") if match and match.group("sid") not in NOT_A_SESSION else None
