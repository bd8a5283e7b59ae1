"""Thin Ray wrapper: a named, restartable actor around ``StoredShard``.

A shard actor that dies is restarted by Ray (``max_restarts``) and reloads its bucket range from its store and
its write-ahead logs in ``__init__``, so every acknowledged learn survives; its flusher thread moves the logs
to the store. In embedded mode each shard owns its own chdb data directory (chdb allows one process per
directory); with a ClickHouse server all shards share the tables.
"""

from __future__ import annotations

import os
import pickle
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import pyarrow as pa
import ray
from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError, RayTaskError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from actors.process_memory import resident_bytes, tune_collector
from actors.ranges import ShardRanges
from actors.shard import LocalTop, Shard, ShardStats
from actors.stored_shard import FlushPolicy, StoredShard
from actors.vector_index import NodeVectors, VectorIndex
from cluster.stores.pattern_log import decode_rows, encode_rows
from cluster.stores.vector_buffer import VectorBuffer
from schema.errors import KatoError, ShardUnavailable
from schema.placement import ShardMap, least_loaded_nodes
from schema.rules.query import QueryOptions

ACTOR_PREFIX = "kato-shard-"
TRANSIENT_ERRORS = (RayActorError, ActorDiedError, ActorUnavailableError)


def get_or_unavailable(refs, timeout: float):
    """``ray.get`` with Ray's failures in the project's family: a dead or restarting actor is
    ``ShardUnavailable``; an error of ours raised inside the actor (say ``StoreUnavailable``) is raised again as
    itself; anything else (a bug) passes through."""
    try:
        return ray.get(refs, timeout=timeout)
    except TRANSIENT_ERRORS as error:
        raise ShardUnavailable() from error
    except RayTaskError as error:
        if isinstance(error.cause, KatoError):
            raise error.cause from error
        raise


SCHEDULING_MEMORY = 2**20
"""Bytes of Ray's logical ``memory`` a shard asks for. Not a limit: Ray disregards a soft node affinity for
an actor that asks for no resource at all (it picks a random node), so the shards ask for this token."""


@ray.remote(max_restarts=-1, max_task_retries=0, num_cpus=0, memory=SCHEDULING_MEMORY)
class ShardActor:
    vectors: NodeVectors | None = None  # made on first use (``_vectors``)

    def __init__(self, shard_id: int, lo: int, hi: int, store_dsn: str | None, redis_url: str | None = None,
                 flush: dict | None = None, namespace: str = "kato"):
        """``lo``/``hi``: the range when there is no saved shard map (with one, the map says)."""
        from cluster.stores.engines import open_store
        from cluster.stores.pattern_log import PatternLog
        from cluster.stores.redis_client import connect
        from cluster.stores.shard_map import ShardMapStore

        store = open_store(store_dsn, ".") if store_dsn else None
        log = PatternLog.from_url(redis_url, namespace) if redis_url else None
        maps = ShardMapStore(connect(redis_url), namespace) if redis_url else None
        shared = bool(store_dsn) and not str(store_dsn).startswith("chdb:")  # a server: every shard's tables
        self.inner = StoredShard(Shard(shard_id, lo, hi), store, log, FlushPolicy(**(flush or {})),
                                 ranges=ShardRanges(shard_id, lo, hi, maps), shared_store=shared)
        self.loaded = self.inner.load()
        self.inner.start_flusher()
        tune_collector()

    def ready(self) -> int:
        return self.loaded

    def query(self, request: bytes) -> bytes:
        """The local top for a pickled ``(kb_id, stm, options, map version)``, pickled here: Ray's generic
        serialization of the dataclasses costs more, both ways (about 1 ms per query with two shards)."""
        kb_id, stm, options, version = pickle.loads(request)
        return pickle.dumps(self.inner.query(kb_id, stm, options, version), protocol=pickle.HIGHEST_PROTOCOL)

    def index_table(self, rows: bytes) -> int:
        """Rows as Arrow IPC bytes (``encode_rows``): Ray's own serialization of a small table takes ~2 ms, this
        ~0.1 ms both ways."""
        return self.inner.index_table(decode_rows(rows))

    def flush(self) -> int:
        return self.inner.flush()

    def set_map(self, shard_map: dict) -> None:
        self.inner.set_map(ShardMap.from_json(shard_map))

    def export_range(self, lo: int, hi: int) -> pa.Table:
        return self.inner.export_range(lo, hi)

    def import_rows(self, rows: pa.Table) -> tuple[int, int]:
        self.inner.import_rows(rows)
        return rows.num_rows, rows.nbytes

    def forward_pending(self) -> int:
        return self.inner.forward_pending()

    def index_pending(self) -> int:
        return self.inner.index_pending()

    def finish_move(self) -> int:
        return self.inner.finish_move()

    def retire(self) -> None:
        self.inner.retire()

    def drop_kb(self, kb_id: str) -> None:
        self.inner.drop_kb(kb_id)

    def stats(self) -> ShardStats:
        return replace(self.inner.stats(), node_id=ray.get_runtime_context().get_node_id(), rss_bytes=resident_bytes())

    def export(self, kb_id: str) -> list[tuple[str, list[list[str]]]]:
        return self.inner.export(kb_id)

    def get(self, kb_id: str, name: str) -> list[list[str]] | None:
        return self.inner.get(kb_id, name)

    def _vectors(self) -> NodeVectors | None:
        """The nodes' vector index and buffers, owned by this actor (shard 0's); None without Redis."""
        if self.vectors is None and self.inner.log is not None:
            self.vectors = NodeVectors(VectorIndex(self.inner.store), VectorBuffer(self.inner.log.client))
        return self.vectors

    def observe_vector(self, kb_id: str, name: str, vector: list[float]) -> list[str]:
        vectors = self._vectors()
        return vectors.observe_vector(kb_id, name, vector) if vectors is not None else []

    def flush_vectors(self, kb_id: str) -> int:
        vectors = self._vectors()
        return vectors.flush_vectors(kb_id) if vectors is not None else 0

    def drop_vectors(self, kb_id: str) -> None:
        vectors = self._vectors()
        if vectors is not None:
            vectors.drop_kb(kb_id)

    def pid(self) -> int:
        return os.getpid()


def start_shard_actors(ranges: Sequence[tuple[int, int, int]], store_dsns: Sequence[str | None],
                       namespace: str, detached: bool = False, redis_url: str | None = None,
                       flush: dict | None = None, occupied: Mapping[str, int] | None = None
                       ) -> list[ray.actor.ActorHandle]:
    """Start (or reuse) one named actor per bucket range and wait until each has loaded its range (and the
    rows still in its write-ahead logs on ``redis_url``).

    Placement (``placements``): each shard asks for the live node holding the fewest shards (``occupied``
    counts the shards already running, per node id), as a soft preference, so the shards of a cluster of
    several nodes are spread evenly over them, a node that joined takes the shards a reshard adds, and one
    restarted after its node died goes to a node still alive. The actors reserve no CPU and a token of memory
    (``SCHEDULING_MEMORY``), so any node can take one."""
    strategies = placements(len(ranges), live_nodes(), occupied or {})
    handles = [
        ShardActor.options(  # type: ignore[attr-defined]  # added by @ray.remote
            name=f"{ACTOR_PREFIX}{shard_id}", namespace=namespace, get_if_exists=True,
            scheduling_strategy=strategy,
            lifetime="detached" if detached else None).remote(shard_id, lo, hi, dsn, redis_url, flush, namespace)
        for (shard_id, lo, hi), dsn, strategy in zip(ranges, store_dsns, strategies)
    ]
    ray.get([h.ready.remote() for h in handles])
    return handles


def live_nodes() -> list[str]:
    """The ids of Ray's live nodes, in id order."""
    return sorted(n["NodeID"] for n in ray.nodes() if n.get("Alive"))


def ray_nodes() -> list[dict[str, Any]]:
    """Ray's nodes as ``/status`` lists them: id, address, whether alive, CPUs and memory Ray may schedule;
    live ones first, then by id."""
    listed = [{"node_id": n["NodeID"], "address": n.get("NodeManagerAddress", ""), "alive": bool(n.get("Alive")),
               "cpus": float(n.get("Resources", {}).get("CPU", 0.0)),
               "memory_bytes": int(n.get("Resources", {}).get("memory", 0))} for n in ray.nodes()]
    return sorted(listed, key=lambda n: (not n["alive"], n["node_id"]))


def placements(count: int, nodes: Sequence[str], occupied: Mapping[str, int]
               ) -> list[NodeAffinitySchedulingStrategy | str]:
    """Where ``count`` new shards start among ``nodes`` (``live_nodes``): ``least_loaded_nodes``, softly (a node
    that is gone or full is passed over); ``SPREAD`` when Ray lists no node."""
    if not nodes:
        return ["SPREAD"] * count
    return [NodeAffinitySchedulingStrategy(node, soft=True) for node in least_loaded_nodes(count, nodes, occupied)]


Starter = Callable[[int, int, int, Mapping[str, int]], ray.actor.ActorHandle]
"""Starts (or finds) the shard actor of a shard id with that range, loaded: what a reshard adds. The mapping
counts the shards running on each Ray node (``placements``)."""


class RayShards:
    """``ShardClient`` over shard actors keyed by shard id; a restarting shard surfaces as ``ShardUnavailable``.
    ``namespace`` finds the actors a reshard added elsewhere (``sync``); ``starter`` starts them here."""

    def __init__(self, handles: Sequence[ray.actor.ActorHandle] | Mapping[int, ray.actor.ActorHandle],
                 timeout: float = 30.0, namespace: str | None = None, starter: Starter | None = None):
        self.handles: dict[int, ray.actor.ActorHandle] = (dict(handles) if isinstance(handles, Mapping)
                                                          else dict(enumerate(handles)))
        self.timeout = timeout
        self.namespace = namespace
        self.starter = starter

    def _get(self, refs):
        return get_or_unavailable(refs, self.timeout)

    def _all(self) -> list[ray.actor.ActorHandle]:
        handles = self.handles  # replaced whole, never changed in place: requests in flight see one set
        return [handles[i] for i in sorted(handles)]

    def query_many(self, kb_id: str, stm: Sequence[Sequence[str]], options: QueryOptions,
                   version: int | None = None) -> list[LocalTop]:
        request = pickle.dumps((kb_id, [list(e) for e in stm], options, version), protocol=pickle.HIGHEST_PROTOCOL)
        return [pickle.loads(packed) for packed in self._get([h.query.remote(request) for h in self._all()])]

    def index_tables(self, tables: Mapping[int, pa.Table]) -> int:
        handles = self.handles  # a shard retired since the rows were routed: the cut-over carried them on
        refs = [handles[sid].index_table.remote(encode_rows(t)) for sid, t in tables.items()
                if t.num_rows and sid in handles]
        return sum(self._get(refs)) if refs else 0

    def flush(self) -> int:
        return sum(self._get([h.flush.remote() for h in self._all()]))

    def drop_kb(self, kb_id: str) -> None:
        self._get([h.drop_kb.remote(kb_id) for h in self._all()])

    def stats(self) -> list[ShardStats]:
        return self._get([h.stats.remote() for h in self._all()])

    def export(self, kb_id: str) -> list[tuple[str, list[list[str]]]]:
        return [item for part in self._get([h.export.remote(kb_id) for h in self._all()]) for item in part]

    def nodes(self) -> list[dict[str, Any]]:
        """Every node Ray knows, live ones first (a node that joined and holds no shard yet is listed too)."""
        return ray_nodes()

    def get(self, kb_id: str, name: str) -> list[list[str]] | None:
        return next((e for e in self._get([h.get.remote(kb_id, name) for h in self._all()]) if e is not None),
                    None)

    def wait_ready(self, deadline_seconds: float = 60.0) -> None:
        """Block until every shard answers (e.g. after a restart)."""
        deadline = time.monotonic() + deadline_seconds
        while True:
            try:
                self._get([h.ready.remote() for h in self._all()])
                return
            except ShardUnavailable:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def sync(self, shard_map: ShardMap) -> None:
        """Reach the actors of every shard the map names (a reshard run elsewhere added them). A shard of the
        target only may not be started yet: it owns nothing before the cut-over, and the map that gives it a
        range is loaded (and synced) again after it."""
        wanted = set(shard_map.shard_ids())
        serving = {r.shard_id for r in shard_map.ranges}
        handles = {sid: h for sid, h in self.handles.items() if sid in wanted}
        for shard_id in sorted(wanted - set(handles)):
            found = self._named(shard_id)
            if found is not None:
                handles[shard_id] = found
            elif shard_id in serving:
                raise ShardUnavailable(f"shard {shard_id} is not running yet")
        self.handles = handles

    def _named(self, shard_id: int) -> ray.actor.ActorHandle | None:
        try:
            return ray.get_actor(f"{ACTOR_PREFIX}{shard_id}", namespace=self.namespace)
        except ValueError:
            return None

    # --------------------------------------------------------------- reshards
    def set_map(self, shard_map: ShardMap) -> None:
        self._get([h.set_map.remote(shard_map.to_json()) for h in self._all()])

    def copy_range(self, src: int, dst: int, lo: int, hi: int) -> tuple[int, int]:
        """The rows of buckets ``lo..hi`` from shard ``src`` into ``dst`` (straight between the two actors);
        (rows, bytes) copied."""
        return self._get(self.handles[dst].import_rows.remote(self.handles[src].export_range.remote(lo, hi)))

    def flush_shard(self, shard_id: int) -> int:
        return self._get(self.handles[shard_id].flush.remote())

    def forward_shard(self, shard_id: int) -> int:
        return self._get(self.handles[shard_id].forward_pending.remote())

    def index_shard(self, shard_id: int) -> int:
        return self._get(self.handles[shard_id].index_pending.remote())

    def finish_move(self, shard_id: int) -> int:
        return self._get(self.handles[shard_id].finish_move.remote())

    def add_shard(self, shard_id: int, lo: int, hi: int) -> None:
        if shard_id not in self.handles:
            if self.starter is None:
                raise RuntimeError("these shard actors were reached without a starter: they cannot grow")
            occupied = Counter(stats.node_id for stats in self.stats())
            self.handles = {**self.handles, shard_id: self.starter(shard_id, lo, hi, occupied)}

    def remove_shard(self, shard_id: int) -> None:
        """Retire a shard's actor and stop it; repeatable. It is found by name when this process no longer holds
        it (a request that met the switched map has synced it away already)."""
        handle = self.handles.get(shard_id) or self._named(shard_id)
        if handle is not None:
            self._get(handle.retire.remote())
            ray.kill(handle, no_restart=True)
        self.handles = {sid: h for sid, h in self.handles.items() if sid != shard_id}


class ShardVectorStore:
    """The nodes' vectors (``actors.vector_index.NodeVectors``) owned by one shard actor (shard 0's, the
    process that owns its embedded store)."""

    def __init__(self, handle: ray.actor.ActorHandle, timeout: float = 30.0):
        self.handle = handle
        self.timeout = timeout

    def _get(self, ref):
        return get_or_unavailable(ref, self.timeout)

    def observe_vector(self, kb_id: str, name: str, vector: Sequence[float]) -> list[str]:
        return self._get(self.handle.observe_vector.remote(kb_id, name, [float(x) for x in vector]))

    def flush_vectors(self, kb_id: str) -> int:
        return self._get(self.handle.flush_vectors.remote(kb_id))

    def drop_kb(self, kb_id: str) -> None:
        self._get(self.handle.drop_vectors.remote(kb_id))
