"""The KATO API as a plain class: every endpoint's behaviour (spec §4), independent of HTTP and Ray.

Per-session operations run under the cluster-wide session lock, so concurrent requests on one session
serialise whichever replica serves them; different sessions proceed in parallel.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, BinaryIO, Protocol

from cluster.stores.redis_kb import RedisKB
from cluster.stores.sessions import SessionStore, session_key
from schema.api import (
    ARROW_STREAM,
    BulkLearnRequest,
    CreateSessionRequest,
    KbImportRequest,
    ObservationData,
    ObservationSequenceRequest,
)
from schema.config import ServerDefaults, creation_config, effective_config, validate_update
from schema.errors import Conflict, Forbidden, SessionNotFound, Unprocessable
from schema.learning import LearnedPattern
from schema.naming import PATTERN_PREFIX, bare_pattern_hash, kb_id_for
from schema.placement import ShardMap
from schema.rules import session_logic
from schema.rules.query import QueryOptions
from schema.session import SessionState, new_session_id
from serve_app import bulk
from serve_app.access import ALL_NODES, PayloadLimits, allowed_nodes, authorize_node
from serve_app.pending_predictions import PendingPredictions, SettleWorker
from serve_app.resharder import ReshardRunner

MAX_TTL_SECONDS = 365 * 24 * 3600
MAX_SHARDS = 256
LOCK_LEASE_SECONDS = 15.0  # renewed while held; a dead holder frees the session after this long


class Backend(session_logic.KnowledgeBackend, Protocol):
    redis_kb: RedisKB
    shards: Any  # exports, stats
    before_change: Callable[[str], None]  # called with the kb_id before anything changes that KB

    def predict(self, kb_id: str, stm: Sequence[Sequence[str]], options: QueryOptions, as_of: str | None = None
                ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]: ...

    def clear_kb(self, kb_id: str) -> None: ...

    def learn_batch(self, kb_id: str, patterns: list[LearnedPattern], persistence: int) -> list[bool]: ...

    def store_patterns(self, kb_id: str, patterns: list[LearnedPattern]) -> int: ...

    def finalize_training(self, kb_id: str) -> int: ...

    def pattern_events(self, kb_id: str, name: str) -> list[list[str]] | None: ...

    def refresh_map(self) -> ShardMap: ...


EventSink = Callable[[str, dict[str, Any]], None]


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


class KatoService:
    """Every session operation first loads its session, so an unknown session is a 404 before any other
    check (the HTTP layer adds the same for bodies that fail validation)."""

    def __init__(self, sessions: SessionStore, backend: Backend, defaults: ServerDefaults | None = None,
                 service_name: str = "kato", publish: EventSink | None = None, limits: PayloadLimits | None = None):
        self.sessions = sessions
        self.pending = PendingPredictions(sessions, backend)
        backend.before_change = self.pending.settle_kb  # a KB change first settles the observes before it
        self.backend = backend
        self.settler = SettleWorker(self.pending)
        self.defaults = defaults or ServerDefaults()
        self.service_name = service_name
        self.publish = publish or (lambda _type, _data: None)
        self.limits = limits or PayloadLimits()
        self.bulk = bulk.BulkLoader(self.backend)
        self.resharding: ReshardRunner | None = None  # set by whoever assembles the service (a saved map)

    # ------------------------------------------------------------- helpers
    def kb_id(self, node_id: str) -> str:
        authorize_node(node_id)
        return kb_id_for(node_id, self.service_name)

    @staticmethod
    def _require_all_nodes(what: str = "raw knowledge-base access") -> None:
        nodes = allowed_nodes.get()
        if nodes is not None and ALL_NODES not in nodes:
            raise Forbidden(f"{what} needs an API key for all nodes ('*')")

    def _load(self, session_id: str, with_predictions: bool = False) -> SessionState:
        return self._state(session_id, self.sessions.get(session_id, touch=True, with_predictions=with_predictions))

    @staticmethod
    def _state(session_id: str, record: dict[str, Any] | None) -> SessionState:
        if record is None:
            raise SessionNotFound(session_id)
        authorize_node(record["node_id"])
        return SessionState.from_dict(record)

    @contextmanager
    def _locked(self, session_id: str) -> Iterator[SessionState]:
        """Load, hand out and save a session under its cluster-wide lock (reads take a snapshot, ``_load``)."""
        with self.sessions.checkout(session_id, timeout=LOCK_LEASE_SECONDS) as held:
            if held.record is None:
                raise SessionNotFound(session_id)
            authorize_node(held.record["node_id"])
            state = SessionState.from_dict(held.record)
            state.access_count += 1
            yield state
            held.save(state.to_dict())

    def _config(self, state: SessionState) -> dict[str, Any]:
        return effective_config(state.session_config, self.defaults)

    def _session_response(self, state: SessionState, ttl_seconds: int) -> dict[str, Any]:
        return {"session_id": state.session_id, "node_id": state.node_id, "created_at": state.created_at,
                "expires_at": state.expires_at, "ttl_seconds": ttl_seconds, "metadata": state.metadata,
                "session_config": self._config(state)}

    # ------------------------------------------------------------ sessions
    def create_session(self, request: CreateSessionRequest) -> dict[str, Any]:
        if request.ttl_seconds is not None and not 0 <= request.ttl_seconds <= MAX_TTL_SECONDS:
            raise Unprocessable(f"ttl_seconds must be between 1 and {MAX_TTL_SECONDS} (0 means the default)")
        ttl = request.ttl_seconds or self.defaults_ttl
        authorize_node(request.node_id)
        record = self.sessions.create(request.node_id, ttl_seconds=ttl, session_id=new_session_id(),
                                      metadata=dict(request.metadata),
                                      session_config=creation_config(request.config))
        state = SessionState.from_dict(record)
        self.publish("session.created", {"session_id": state.session_id, "node_id": state.node_id,
                                         "created_at": state.created_at})
        return self._session_response(state, ttl)

    @property
    def defaults_ttl(self) -> int:
        return self.sessions.default_ttl

    def get_session(self, session_id: str) -> dict[str, Any]:
        record = self.sessions.get(session_id, touch=True)
        if record is None:
            raise SessionNotFound(session_id, with_error=False)
        authorize_node(record["node_id"])
        remaining = max(0, int(self.sessions.client.ttl(session_key(session_id, self.sessions.tag))))
        return self._session_response(SessionState.from_dict(record), remaining)

    def session_exists(self, session_id: str) -> dict[str, Any]:
        return {**self.sessions.exists(session_id), "session_id": session_id}

    def delete_session(self, session_id: str) -> dict[str, Any]:
        record = self.sessions.get(session_id, touch=False)
        if record is not None:
            authorize_node(record["node_id"])
        if not self.sessions.delete(session_id):
            raise SessionNotFound(session_id)
        self.publish("session.destroyed", {"session_id": session_id, "destroyed_at": _now_iso(),
                                           "reason": "explicit_delete"})
        return {"status": "deleted", "session_id": session_id}

    def count_sessions(self) -> dict[str, Any]:
        return {"active_session_count": self.sessions.count()}

    def extend_session(self, session_id: str, ttl_seconds: int) -> dict[str, Any]:
        self._load(session_id)
        if not 1 <= ttl_seconds <= MAX_TTL_SECONDS:
            raise Unprocessable(f"ttl_seconds must be between 1 and {MAX_TTL_SECONDS}")
        if not self.sessions.extend(session_id, ttl_seconds):
            raise SessionNotFound(session_id)
        return {"status": "extended", "session_id": session_id, "ttl_seconds": ttl_seconds}

    def get_config(self, session_id: str) -> dict[str, Any]:
        return {"session_id": session_id, "config": self._config(self._load(session_id))}

    def update_config(self, session_id: str, body: dict[str, Any]) -> dict[str, Any]:
        nested = body.get("config")
        update: dict[str, Any] = nested if isinstance(nested, dict) else body
        with self._locked(session_id) as state:
            state.session_config.update(validate_update(update))
            state.session_config = {k: v for k, v in state.session_config.items() if v is not None}
        return {"status": "okay", "message": "Configuration updated", "session_id": session_id}

    # -------------------------------------------------------- observations
    def observe(self, session_id: str, observation: ObservationData) -> dict[str, Any]:
        """Observe-time predictions are left pending (``serve_app.pending_predictions``)."""
        with self._locked(session_id) as state:
            self.limits.check_observation(observation)
            result = session_logic.observe(state, observation, self._config(state), self.backend,
                                           self.kb_id(state.node_id), defer_predictions=True)
        if state.pending_predictions is not None:
            self.settler.schedule(session_id, state.pending_predictions["record"])
        return result

    def observe_sequence(self, session_id: str, request: ObservationSequenceRequest) -> dict[str, Any]:
        with self._locked(session_id) as state:
            self.limits.check_sequence(list(request.observations))
            result = session_logic.observe_sequence(state, request, self._config(state), self.backend,
                                                    self.kb_id(state.node_id), defer_predictions=True)
        if state.pending_predictions is not None:
            self.settler.schedule(session_id, state.pending_predictions["record"])
        return result

    def stm(self, session_id: str) -> dict[str, Any]:
        state = self._load(session_id)
        return {"stm": state.stm, "session_id": session_id, "length": len(state.stm)}

    def learn(self, session_id: str) -> dict[str, Any]:
        with self._locked(session_id) as state:
            name = session_logic.learn(state, self._config(state), self.backend, self.kb_id(state.node_id))
        return {"status": "learned", "pattern_name": name, "session_id": session_id, "processor_id": None,
                "message": f"Learned pattern {name} from 0 events"}

    def finalize_training(self, session_id: str) -> dict[str, Any]:
        state = self._load(session_id)
        start = time.perf_counter()
        count = self.backend.finalize_training(self.kb_id(state.node_id))
        elapsed = (time.perf_counter() - start) * 1000
        return {"status": "completed", "patterns_processed": count, "time_ms": elapsed, "session_id": session_id,
                "node_id": state.node_id,
                "message": f"Computed Shannon entropy and TF vectors for {count} patterns in {elapsed:.2f} ms"}

    def clear_stm(self, session_id: str) -> dict[str, Any]:
        with self._locked(session_id) as state:
            state.clear_short_term()
        return {"status": "cleared", "session_id": session_id}

    def clear_all(self, session_id: str) -> dict[str, Any]:
        with self._locked(session_id) as state:
            self.backend.clear_kb(self.kb_id(state.node_id))
            state.clear_short_term()
        return {"status": "cleared", "session_id": session_id, "scope": "all"}

    def predictions(self, session_id: str) -> dict[str, Any]:
        """Read-only: a consistent snapshot of the session (one GET) needs no lock, so predictions never wait
        behind, or hold up, the session's writes."""
        record, pending = self.sessions.read(session_id, touch=True)
        state = self._state(session_id, record)
        kb_id, config = self.kb_id(state.node_id), self._config(state)
        with self.pending.answering(pending, kb_id, state.stm, config) as keep:
            predictions, futures = self.backend.predict(kb_id, state.stm, QueryOptions.from_config(config))
            keep(predictions)
        return {"predictions": predictions, "future_potentials": futures, "session_id": session_id,
                "processor_id": None, "count": len(predictions), "time": None, "unique_id": None}

    def percept_data(self, session_id: str) -> dict[str, Any]:
        state = self._load(session_id)
        return {"percept_data": state.percept_data, "session_id": session_id, "node_id": state.node_id}

    def cognition_data(self, session_id: str) -> dict[str, Any]:
        """Settles first, then reads: a record settled by another (the background settler) between a read and
        this settle would otherwise leave the read's older predictions in the answer."""
        self.pending.settle(session_id)
        state = self._load(session_id, with_predictions=True)
        return {"cognition_data": {
            "predictions": state.predictions,
            "emotives": state.emotives_accumulator[-1] if state.emotives_accumulator else {},
            "symbols": [s for event in state.stm for s in event],
            "command": "", "metadata": {}, "path": [], "strings": [], "vectors": [],
            "short_term_memory": state.stm, "time": state.time,
        }, "session_id": session_id, "node_id": state.node_id}

    # -------------------------------------------------------------- operators
    def start_reshard(self, shards: int) -> dict[str, Any]:
        """Reshard to ``shards`` in the background (needs an API key for all nodes when keys are set)."""
        self._require_all_nodes("resharding")
        if self.resharding is None:
            raise Conflict("this service has no saved shard map: it cannot reshard")
        if not 1 <= shards <= MAX_SHARDS:
            raise Unprocessable(f"shards must be between 1 and {MAX_SHARDS} (got {shards})")
        return self.resharding.start(shards)

    def abort_reshard(self) -> dict[str, Any]:
        self._require_all_nodes("resharding")
        if self.resharding is None:
            raise Conflict("this service has no saved shard map: it cannot reshard")
        return {"status": "aborted", "map": self.resharding.abort().to_json()}

    def reshard_status(self) -> dict[str, Any]:
        self._require_all_nodes("resharding")
        return self.shard_map_status()

    def shard_map_status(self) -> dict[str, Any]:
        """The saved map and the last reshard's progress (shown by ``/status`` too)."""
        shard_map = self.backend.refresh_map()
        progress = self.resharding.progress() if self.resharding is not None else {}
        return {"map": shard_map.to_json(), "progress": progress}

    def engine_health(self) -> dict[str, bool]:
        """Whether Redis and every shard answer."""
        health = {}
        try:
            health["redis"] = bool(self.sessions.client.ping())
        except Exception:  # noqa: BLE001 - any failure means down
            health["redis"] = False
        try:
            health["shards"] = bool(self.backend.shards.stats())
        except Exception:  # noqa: BLE001
            health["shards"] = False
        return health

    def bulk_learn(self, request: BulkLearnRequest) -> dict[str, Any]:
        """A JSON batch of patterns (``serve_app.bulk``); a ``batch_id`` already applied is not applied again."""
        return self.bulk.learn_request(self.kb_id(request.node_id), request, self.limits)

    def bulk_learn_stream(self, node_id: str, body: BinaryIO, content_type: str, persistence: int = 5,
                          load_id: str | None = None, offset: int = 0, batch: int = bulk.STREAM_BATCH
                          ) -> dict[str, Any]:
        """A streamed body of patterns (NDJSON or Arrow IPC), committed in batches of ``batch`` rows, resumable
        by ``load_id`` (``offset``: the load's row the body starts at)."""
        kb_id = self.kb_id(node_id)
        if not 1 <= persistence <= 100:
            raise Unprocessable(f"persistence must be between 1 and 100 (got {persistence})")
        if not 1 <= batch <= bulk.MAX_STREAM_BATCH or offset < 0:
            raise Unprocessable(f"batch must be between 1 and {bulk.MAX_STREAM_BATCH} and offset >= 0")
        batches = (bulk.arrow_batches(body, batch) if content_type == ARROW_STREAM
                   else bulk.ndjson_batches(body, batch))
        return self.bulk.learn_stream(kb_id, batches, persistence, load_id, self.limits, offset)

    def bulk_load_progress(self, node_id: str, load_id: str) -> dict[str, Any]:
        return self.bulk.progress(self.kb_id(node_id), load_id)

    def export_kb(self, node_id: str, kb_id: str | None = None) -> Iterator[dict[str, Any]]:
        """Every pattern of a node (or of a raw ``kb_id``) with what a load needs to recreate it (the inverse
        of ``bulk_learn``)."""
        if kb_id is not None:
            self._require_all_nodes()
        kb_id = kb_id or self.kb_id(node_id)
        for name, events in sorted(self.backend.shards.export(kb_id)):
            info = self.backend.redis_kb.pattern_info(kb_id, name) or {}
            yield {"name": PATTERN_PREFIX + name, "events": events, "emotives": info.get("emotives") or [],
                   "metadata": info.get("metadata") or {}, "frequency": max(1, int(info.get("frequency") or 0))}

    def import_kb(self, request: KbImportRequest) -> dict[str, Any]:
        """Store a KATO KB's pattern rows (no statistics applied) and its Redis keys (the per-pattern values where
        this deployment's Redis layout keeps them)."""
        self._require_all_nodes()
        prefix = f"{request.kb_id}:"
        foreign = [k for k in request.keys if not k.startswith(prefix)]
        if foreign:
            raise Unprocessable(f"keys must start with {prefix!r}; got {foreign[:3]}")
        stored = self.backend.store_patterns(request.kb_id, [LearnedPattern(name=row.name, events=row.events)
                                                             for row in request.patterns])
        self.backend.redis_kb.import_keys(request.kb_id, {kato_key[len(prefix):]: (item.type, item.value)
                                                          for kato_key, item in request.keys.items()})
        return {"status": "imported", "kb_id": request.kb_id, "patterns_received": len(request.patterns),
                "patterns_stored": stored, "keys_written": len(request.keys)}

    # ---------------------------------------------------------- node level
    def pattern(self, node_id: str, pattern_id: str) -> dict[str, Any]:
        kb_id = self.kb_id(node_id)
        name = bare_pattern_hash(pattern_id)
        events = self.backend.pattern_events(kb_id, name)
        info = self.backend.redis_kb.pattern_info(kb_id, name) if events is not None else None
        if events is None:
            return {"pattern": {"status": "error", "message": f"Pattern {pattern_id} not found"}, "node_id": kb_id}
        info = info or {}
        return {"pattern": {"status": "okay", "pattern": {
            "name": PATTERN_PREFIX + name, "pattern_data": events, "length": sum(len(e) for e in events),
            "frequency": max(1, int(info.get("frequency") or 0)), "emotives": info.get("emotives") or [],
            "metadata": info.get("metadata") or {}}}, "node_id": kb_id}

    def affinities(self, node_id: str) -> dict[str, Any]:
        kb_id = self.kb_id(node_id)
        return {"affinities": self.backend.redis_kb.affinities(kb_id), "node_id": kb_id}

    def symbol_affinity(self, node_id: str, symbol: str) -> dict[str, Any]:
        kb_id = self.kb_id(node_id)
        return {"symbol": symbol, "affinity": self.backend.redis_kb.symbol_affinity(kb_id, symbol), "node_id": kb_id}

    def symbol_stats(self, node_id: str) -> dict[str, Any]:
        kb_id = self.kb_id(node_id)
        return {"symbols": self.backend.redis_kb.symbol_stats(kb_id), "node_id": kb_id}

    def deprecated_percept(self, node_id: str) -> dict[str, Any]:
        return {"percept_data": {}, "node_id": self.kb_id(node_id),
                "warning": "Deprecated: use GET /sessions/{session_id}/percept-data"}

    def deprecated_cognition(self, node_id: str) -> dict[str, Any]:
        return {"cognition_data": {"predictions": [], "emotives": {}, "symbols": [], "command": "", "metadata": {},
                                   "path": [], "strings": [], "vectors": [], "short_term_memory": []},
                "node_id": self.kb_id(node_id),
                "warning": "Deprecated: use GET /sessions/{session_id}/cognition-data"}


def resolve_node(query_node: str | None, test_id: str | None, node_header: str | None) -> str:
    """Node of a non-session endpoint (spec §4.3): query, then ``x-test-id`` (``test_`` prefixed), then
    ``x-node-id``, else ``default_node``."""
    if query_node:
        return query_node
    if test_id:
        return test_id if test_id.startswith("test_") else f"test_{test_id}"
    return node_header or "default_node"
