"""KATO in one process, without HTTP or storage: sessions over the in-memory backend.

Used by the engine demo and by tests as the oracle that the cluster's answers are compared with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from schema.api import ObservationData, ObservationSequenceRequest
from schema.config import ServerDefaults, effective_config, validate_update
from schema.naming import kb_id_for
from schema.rules import session_logic
from schema.rules.memory_backend import MemoryBackend
from schema.rules.query import QueryOptions
from schema.session import SessionState, new_session_id


@dataclass
class ReferenceSession:
    kato: ReferenceKato
    state: SessionState

    @property
    def kb_id(self) -> str:
        return kb_id_for(self.state.node_id)

    @property
    def config(self) -> dict[str, Any]:
        return effective_config(self.state.session_config, self.kato.defaults)

    def update_config(self, update: dict[str, Any]) -> None:
        self.state.session_config.update(validate_update(update))

    def observe(self, strings: list[str] | None = None, **fields: Any) -> dict[str, Any]:
        obs = ObservationData(strings=strings or [], **fields)
        return session_logic.observe(self.state, obs, self.config, self.kato.backend, self.kb_id)

    def observe_sequence(self, **request: Any) -> dict[str, Any]:
        return session_logic.observe_sequence(self.state, ObservationSequenceRequest(**request), self.config,
                                              self.kato.backend, self.kb_id)

    def learn(self) -> str:
        return session_logic.learn(self.state, self.config, self.kato.backend, self.kb_id)

    def predictions(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        return self.kato.backend.predict(self.kb_id, self.state.stm, QueryOptions.from_config(self.config))

    def clear_stm(self) -> None:
        self.state.clear_short_term()

    def clear_all(self) -> None:
        self.kato.backend.clear(self.kb_id)
        self.state.clear_short_term()


@dataclass
class ReferenceKato:
    defaults: ServerDefaults = field(default_factory=ServerDefaults)
    backend: MemoryBackend = field(default_factory=MemoryBackend)

    def session(self, node_id: str, config: dict[str, Any] | None = None) -> ReferenceSession:
        session = ReferenceSession(self, SessionState(session_id=new_session_id(), node_id=node_id))
        if config:
            session.update_config(config)
        return session
