"""Session state, stored as KATO's session JSON under ``kato:session:{id}`` (spec §3.6)."""

from __future__ import annotations

import time as _time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

MAX_ACCUMULATOR_ENTRIES = 1000
DEFAULT_TTL_SECONDS = 3600


def new_session_id() -> str:
    """KATO's format: ``session-<uuid4 hex>-<ms epoch>``."""
    return f"session-{uuid.uuid4().hex}-{int(_time.time() * 1000)}"


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat()


@dataclass
class SessionState:
    """The fields of KATO's session JSON; timestamps are ISO strings as the session store writes them."""

    session_id: str
    node_id: str
    created_at: str = ""
    last_accessed: str = ""
    expires_at: str = ""
    ttl_seconds: int = DEFAULT_TTL_SECONDS
    stm: list[list[str]] = field(default_factory=list)
    emotives_accumulator: list[dict[str, float]] = field(default_factory=list)
    metadata_accumulator: list[dict[str, Any]] = field(default_factory=list)
    time: int = 0
    percept_data: dict[str, Any] = field(default_factory=dict)
    predictions: list[dict[str, Any]] | None = None  # None: not loaded (kept as stored when saved)
    # An observe's predictions still to compute (kb_id, STM, config, unique_id); stored beside the session
    pending_predictions: dict[str, Any] | None = None
    session_config: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    access_count: int = 0
    max_stm_size: int = 1000
    max_emotives_size: int = MAX_ACCUMULATOR_ENTRIES
    max_metadata_size: int = MAX_ACCUMULATOR_ENTRIES

    def to_dict(self) -> dict[str, Any]:
        """Shallow: the values are JSON-ready already (``asdict`` would deep-copy every prediction)."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SessionState:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    def clear_short_term(self) -> None:
        self.stm = []
        self.emotives_accumulator = []
        self.metadata_accumulator = []
        self.time = 0
        self.percept_data = {}
        self.predictions = []
        self.pending_predictions = None
