"""Resharding while serving (``serve_app.resharder``): every query sees the corpus exactly once before, during and
after a move, no acknowledged learn is lost or counted twice, and a move cut short resumes or rolls back.

The shards here run in this process on the test's chdb store (one store for all shards, as in single-process
mode); the Ray test (``tests/e2e/test_resharding_ray.py``) moves rows between shards with stores of their own.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

import pytest

from actors.stored_shard import FlushPolicy
from cluster.ops.local import local_shard_factory
from cluster.stores.redis_kb import RedisKB
from cluster.stores.shard_map import FreezeExpired, ShardMapStore
from schema.errors import Conflict, ServiceUnavailable, StaleShardMap
from schema.learning import LearnedPattern, make_pattern
from schema.placement import ShardMap, owners, pattern_buckets, rebalanced
from schema.rules.memory_backend import MemoryBackend
from schema.rules.query import QueryOptions
from serve_app.cluster_backend import ClusterBackend
from serve_app.local_shards import LocalShards
from serve_app.resharder import FREEZE_MS, Resharder, ReshardRunner
from serve_app.topology import shard_ranges
from tests.unit.test_predictor_differential import assert_same

pytestmark = pytest.mark.integration

WORDS = [f"w{i}" for i in range(40)]
OPTIONS = QueryOptions(recall_threshold=0.1, max_predictions=25)
FAST_FLUSH = FlushPolicy(interval=0.05, max_rows=200, retry_seconds=0.1)


class Cluster:
    """In-process shards, the map in Redis, and a backend routing by it (what ``start_local`` assembles)."""

    def __init__(self, chdb_store, redis_client, pattern_log, count: int) -> None:
        self.maps = ShardMapStore(redis_client, pattern_log.keys.namespace)
        shard_map = self.maps.initialize(ShardMap.even(count))
        self.factory = local_shard_factory(chdb_store, pattern_log, self.maps, FAST_FLUSH)
        self.shards = LocalShards([self.factory(*r) for r in shard_ranges(shard_map)], factory=self.factory)
        self.backend = ClusterBackend(self.shards, shard_map.ranges, RedisKB(redis_client),
                                      log_keys=pattern_log.keys, maps=self.maps)
        self.log = pattern_log

    def resharder(self, **options) -> Resharder:
        return Resharder(self.shards, self.maps, **options)

    def reshard(self, count: int, **options) -> None:
        self.resharder(**options).reshard(count)
        self.backend.refresh_map()

    def counts(self, kb_id: str) -> dict[int, int]:
        return {sid: shard.count(kb_id) for sid, shard in sorted(self.shards.shards.items())}

    def names(self, kb_id: str) -> list[str]:
        return sorted(name for name, _ in self.shards.export(kb_id))

    def close(self) -> None:
        for shard in self.shards.shards.values():
            shard.stop_flusher()


@pytest.fixture
def cluster_of(chdb_store, redis_client, pattern_log):
    made: list[Cluster] = []

    def make(count: int) -> Cluster:
        made.append(Cluster(chdb_store, redis_client, pattern_log, count))
        return made[-1]

    yield make
    for cluster in made:
        cluster.close()


def random_pattern(rng: random.Random) -> LearnedPattern:
    events = [rng.sample(WORDS, rng.randint(1, 3)) for _ in range(rng.randint(2, 4))]
    pattern = make_pattern(events)
    assert pattern is not None
    return pattern


def random_stm(rng: random.Random) -> list[list[str]]:
    return [sorted(rng.sample(WORDS, rng.randint(1, 2))) for _ in range(2)]


class Writer(threading.Thread):
    """Learns into its own KB and, after each acknowledged learn, predicts: the answer must equal the reference
    engine's over exactly the learns acknowledged so far (this writer is the KB's only one)."""

    def __init__(self, backend: ClusterBackend, kb_id: str, seed: int, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.backend, self.kb_id, self.stop = backend, kb_id, stop
        self.rng = random.Random(seed)
        self.reference = MemoryBackend()
        self.acked: list[LearnedPattern] = []
        self.unavailable = 0
        self.compared = 0
        self.errors: list[BaseException] = []

    def run(self) -> None:
        while not self.stop.is_set() and not self.errors:
            pattern = self.rng.choice(self.acked) if self.acked and self.rng.random() < 0.2 \
                else random_pattern(self.rng)  # some learns repeat a pattern: its frequency must count once each
            try:
                self.step(pattern)
            except ServiceUnavailable:
                self.unavailable += 1  # a 503 with Retry-After: the learn may or may not have landed
                break
            except BaseException as error:  # noqa: BLE001 - reported to the test
                self.errors.append(error)

    def step(self, pattern: LearnedPattern) -> None:
        self.backend.learn(self.kb_id, pattern, 5)
        self.acked.append(pattern)
        self.reference.learn(self.kb_id, pattern, 5)
        stm = random_stm(self.rng)
        assert_same(self.backend.predict(self.kb_id, stm, OPTIONS), self.reference.predict(self.kb_id, stm, OPTIONS))
        self.compared += 1


class Reader(threading.Thread):
    """Predicts on a KB nobody changes; every answer must equal the reference's."""

    def __init__(self, backend: ClusterBackend, kb_id: str, reference: MemoryBackend, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.backend, self.kb_id, self.reference, self.stop = backend, kb_id, reference, stop
        self.rng = random.Random(7)
        self.compared = 0
        self.unavailable = 0
        self.errors: list[BaseException] = []

    def run(self) -> None:
        while not self.stop.is_set() and not self.errors:
            stm = random_stm(self.rng)
            try:
                got = self.backend.predict(self.kb_id, stm, OPTIONS)
                assert_same(got, self.reference.predict(self.kb_id, stm, OPTIONS))
                self.compared += 1
            except ServiceUnavailable:
                self.unavailable += 1
            except BaseException as error:  # noqa: BLE001
                self.errors.append(error)


def learn_corpus(backend: ClusterBackend, kb_id: str, count: int, seed: int) -> MemoryBackend:
    rng, reference = random.Random(seed), MemoryBackend()
    for _ in range(count):
        pattern = random_pattern(rng)
        backend.learn(kb_id, pattern, 5)
        reference.learn(kb_id, pattern, 5)
    return reference


def assert_exactly_once(cluster: Cluster, kb_id: str, reference: MemoryBackend) -> None:
    expected = sorted(reference.kb(kb_id).patterns)
    assert cluster.names(kb_id) == expected  # each pattern on exactly one shard: none missing, none twice
    assert sum(cluster.counts(kb_id).values()) == len(expected)
    rng = random.Random(3)
    for _ in range(20):
        stm = random_stm(rng)
        assert_same(cluster.backend.predict(kb_id, stm, OPTIONS), reference.predict(kb_id, stm, OPTIONS))


def owners_now(cluster: Cluster, kb_id: str) -> dict[int, set[str]]:
    held: dict[int, set[str]] = {}
    for sid, shard in cluster.shards.shards.items():
        held[sid] = {name for name, _ in shard.export(kb_id)}
    return held


@pytest.mark.slow
def test_reshard_2_3_4_2_while_learning_and_predicting(cluster_of, make_kb_id, chdb_store):
    cluster = cluster_of(2)
    static_kb = make_kb_id("static")
    static_reference = learn_corpus(cluster.backend, static_kb, 300, seed=1)
    stop = threading.Event()
    writers = [Writer(cluster.backend, make_kb_id(f"w{i}"), seed=10 + i, stop=stop) for i in range(2)]
    reader = Reader(cluster.backend, static_kb, static_reference, stop)
    for thread in (*writers, reader):
        thread.start()
    try:
        for count in (3, 4, 2):
            time.sleep(0.5)
            cluster.reshard(count, chunk_buckets=8192)
            assert len(cluster.maps.load().ranges) == count
            assert sorted(cluster.shards.shards) == sorted(r.shard_id for r in cluster.maps.load().ranges)
        time.sleep(0.5)
    finally:
        stop.set()
        for thread in (*writers, reader):
            thread.join(timeout=60)
    for thread in (*writers, reader):
        assert not thread.errors, thread.errors[0]
    assert reader.compared > 20 and all(w.compared > 20 for w in writers)
    assert cluster.maps.load().version == 4 and cluster.maps.load().target is None
    assert_exactly_once(cluster, static_kb, static_reference)
    for writer in writers:
        if writer.unavailable:  # the last learn may have landed or not: the reference learns it only if it did
            continue
        assert_exactly_once(cluster, writer.kb_id, writer.reference)
    cluster.shards.flush()
    assert stored_names(chdb_store, static_kb) == sorted(static_reference.kb(static_kb).patterns)


def stored_names(store, kb_id: str) -> list[str]:
    """The names as stored, duplicates included (no FINAL)."""
    sql = "SELECT name FROM kato.patterns_data WHERE kb_id = {kb_id:String} ORDER BY name"
    return store._query_table(sql, {"kb_id": kb_id}).column("name").to_pylist()


def test_a_split_moves_the_rows_to_their_new_owner_and_the_old_one_drops_them(cluster_of, make_kb_id):
    cluster = cluster_of(2)
    kb_id = make_kb_id()
    reference = learn_corpus(cluster.backend, kb_id, 200, seed=2)
    before = cluster.counts(kb_id)
    cluster.reshard(3)
    after = cluster.counts(kb_id)
    assert sorted(after) == [0, 1, 2] and after[2] > 0
    assert after[0] < before[0] and after[1] < before[1]
    shard_map = cluster.maps.load()
    for sid, names in owners_now(cluster, kb_id).items():
        home = owners(pattern_buckets([reference.kb(kb_id).patterns[n] for n in sorted(names)]),
                      shard_map.ranges) if names else []
        assert all(owner == sid for owner in home)  # each shard holds its own range only
        assert cluster.shards.shards[sid].shard.count(kb_id) == len(names)  # the index holds nothing else
    assert_exactly_once(cluster, kb_id, reference)


def test_a_query_routed_by_the_old_map_never_misses_what_a_source_drops_meanwhile(cluster_of, make_kb_id):
    """A query by the old map reaches a source shard just as the clean-up drops what it gave away: the shard
    decides which range to answer for under the same lock as the rows, so the query either sees the rows or
    hears that its map is stale (and asks again); it never gets the old range without the rows."""
    cluster = cluster_of(2)
    kb_id = make_kb_id()
    learn_corpus(cluster.backend, kb_id, 200, seed=4)
    old_version = cluster.maps.load().version
    stm = [["w1", "w2"], ["w3"]]
    expected = sum(top.total for top in cluster.shards.query_many(kb_id, stm, OPTIONS, old_version))
    outcomes: list[object] = []

    def query_by_the_old_map() -> None:
        try:
            outcomes.append(sum(top.total for top in cluster.shards.query_many(kb_id, stm, OPTIONS, old_version)))
        except StaleShardMap as error:
            outcomes.append(error)

    class DroppingWhileQueried(Resharder):
        def _clean_up(self, started: ShardMap, switched: ShardMap) -> None:
            sources = [cluster.shards.shards[sid] for sid in sorted({t.src for t in started.moving})]
            for shard in sources:
                shard._index_lock.acquire()
            worker = threading.Thread(target=query_by_the_old_map)
            worker.start()
            time.sleep(0.3)  # the query is at the sources' locks now
            super()._clean_up(started, switched)  # the drop re-enters the lock this thread holds
            for shard in sources:
                shard._index_lock.release()
            worker.join(timeout=30)

    DroppingWhileQueried(cluster.shards, cluster.maps).reshard(3)
    assert expected > 0 and len(outcomes) == 1
    assert isinstance(outcomes[0], StaleShardMap) or outcomes[0] == expected, outcomes


def test_a_merge_retires_the_shard_and_its_logs(cluster_of, make_kb_id, redis_client):
    cluster = cluster_of(3)
    kb_id = make_kb_id()
    reference = learn_corpus(cluster.backend, kb_id, 120, seed=4)
    cluster.reshard(1)
    assert sorted(cluster.shards.shards) == [0]
    assert not redis_client.exists(cluster.log.keys.registry(2)) and not redis_client.exists(
        cluster.log.keys.registry(1))
    assert_exactly_once(cluster, kb_id, reference)


class Crash(RuntimeError):
    """The process running the reshard dies here."""


def crash_when(phase_wanted: str, after: int = 1) -> Callable[[str, dict], None]:
    seen = [0]

    def progress(phase: str, _figures: dict) -> None:
        if phase == phase_wanted:
            seen[0] += 1
            if seen[0] >= after:
                raise Crash(phase)
    return progress


def restarted(cluster_of, old: Cluster) -> Cluster:
    """Every process of the cluster restarts: the shards the saved map names are started again."""
    old.close()
    shard_map = old.maps.load()
    return cluster_of(len(shard_map.ranges))  # the count is ignored: the saved map is the truth


def test_a_reshard_cut_short_mid_copy_resumes(cluster_of, make_kb_id):
    cluster = cluster_of(2)
    kb_id = make_kb_id()
    reference = learn_corpus(cluster.backend, kb_id, 150, seed=5)
    with pytest.raises(Crash):
        cluster.resharder(progress=crash_when("copying", after=3), chunk_buckets=1024).reshard(3)
    interrupted = cluster.maps.load()
    assert interrupted.version == 1 and interrupted.target is not None
    assert_exactly_once(cluster, kb_id, reference)  # the old owners still answer for everything
    cluster = restarted(cluster_of, cluster)
    assert sorted(cluster.shards.shards) == [0, 1, 2]  # the receiving shard is started again too
    rng = random.Random(50)
    for _ in range(30):  # learns made while the reshard stands half done
        pattern = random_pattern(rng)
        cluster.backend.learn(kb_id, pattern, 5)
        reference.learn(kb_id, pattern, 5)
    assert_exactly_once(cluster, kb_id, reference)
    with pytest.raises(Conflict, match="a reshard to 3 shards is in progress"):
        cluster.resharder().reshard(4)
    cluster.reshard(3)
    assert cluster.maps.load().version == 2
    assert_exactly_once(cluster, kb_id, reference)


def test_a_reshard_cut_short_rolls_back_on_abort(cluster_of, make_kb_id, redis_client):
    cluster = cluster_of(2)
    kb_id = make_kb_id()
    reference = learn_corpus(cluster.backend, kb_id, 150, seed=6)
    with pytest.raises(Crash):
        cluster.resharder(progress=crash_when("catching up")).reshard(3)
    back = cluster.resharder().abort()
    cluster.backend.refresh_map()
    assert back.version == 1 and back.target is None and len(back.ranges) == 2
    assert sorted(cluster.shards.shards) == [0, 1]
    assert not redis_client.exists(cluster.log.keys.registry(2))
    assert_exactly_once(cluster, kb_id, reference)
    with pytest.raises(Conflict, match="no reshard is in progress"):
        cluster.resharder().abort()


def test_a_crash_after_the_switch_finishes_on_restart(cluster_of, make_kb_id):
    cluster = cluster_of(2)
    kb_id = make_kb_id()
    reference = learn_corpus(cluster.backend, kb_id, 100, seed=8)
    with pytest.raises(Crash):
        cluster.resharder(progress=crash_when("switched")).reshard(3)
    assert cluster.maps.load().version == 2  # the cut-over is durable: the old owners must not answer any more
    cluster = restarted(cluster_of, cluster)
    assert_exactly_once(cluster, kb_id, reference)


def moving_pattern(shard_map: ShardMap, rng: random.Random) -> LearnedPattern:
    while True:
        pattern = random_pattern(rng)
        bucket = int(pattern_buckets([pattern.events])[0])
        if any(t.lo <= bucket <= t.hi for t in shard_map.moving):
            return pattern


def test_learns_into_a_moving_range_wait_for_the_cut_over_and_land_with_the_new_owner(cluster_of, make_kb_id):
    cluster = cluster_of(2)
    kb_id = make_kb_id()
    current = cluster.maps.load()
    started = cluster.maps.begin(current, rebalanced(current.ranges, 3))
    cluster.shards.add_shard(2, *started.range_of(2, started.version + 1))
    cluster.shards.set_map(started)
    pattern = moving_pattern(started, random.Random(9))
    frozen = cluster.maps.freeze(started, 5000)
    landed = threading.Event()
    learner = threading.Thread(target=lambda: (cluster.backend.learn(kb_id, pattern, 5), landed.set()))
    learner.start()
    assert not landed.wait(0.3)  # the learn waits while its bucket is frozen
    switched = cluster.maps.switch(frozen)
    cluster.shards.set_map(switched)
    assert landed.wait(10)
    learner.join()
    dst = next(t.dst for t in started.moving if t.lo <= int(pattern_buckets([pattern.events])[0]) <= t.hi)
    assert cluster.backend.map.version == 2  # the learn found the map moved on and routed again
    assert cluster.shards.shards[dst].count(kb_id) == 1
    assert sum(cluster.counts(kb_id).values()) == 1


def test_a_learn_routed_by_an_old_map_is_refused_untouched(cluster_of, make_kb_id, redis_client):
    cluster = cluster_of(2)
    kb_id = make_kb_id()
    current = cluster.maps.load()
    cluster.maps.switch(cluster.maps.freeze(cluster.maps.begin(current, rebalanced(current.ranges, 2)), 5000))
    redis_kb = RedisKB(redis_client)
    from cluster.stores.learn_commit import MapGuard

    pattern = random_pattern(random.Random(1))
    with pytest.raises(StaleShardMap):
        redis_kb.learn_batch(kb_id, [pattern], 5, map_guard=MapGuard(cluster.maps.key, current.version, (0,)))
    assert redis_client.keys(f"{kb_id}:*") == []  # nothing of the learn was applied


def test_the_cut_over_never_switches_once_the_freeze_ran_out(cluster_of):
    cluster = cluster_of(2)
    current = cluster.maps.load()
    started = cluster.maps.begin(current, rebalanced(current.ranges, 3))
    frozen = cluster.maps.freeze(started, 1)
    time.sleep(0.01)
    with pytest.raises(FreezeExpired):
        cluster.maps.switch(frozen)
    assert cluster.maps.load() == frozen  # still the old version, target kept: a new freeze can try again
    with pytest.raises(Conflict, match="changed meanwhile"):
        cluster.maps.begin(current, rebalanced(current.ranges, 4))  # another reshard cannot start over it
    switched = cluster.maps.switch(cluster.maps.freeze(frozen, 5000))
    assert switched.version == 2 and switched.ranges == started.target and switched.target is None


def test_the_saved_map_wins_over_the_asked_count(cluster_of):
    first = cluster_of(2)
    again = cluster_of(5)
    assert again.maps.load() == first.maps.load() and len(again.backend.ranges) == 2


def wait_for(runner: ReshardRunner, phases: tuple[str, ...], timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (progress := runner.progress()).get("phase") in phases:
            return progress
        time.sleep(0.01)
    raise AssertionError(f"no phase {phases}: {runner.progress()}")


def test_one_reshard_at_a_time_cluster_wide(cluster_of, make_kb_id, redis_client, pattern_log):
    cluster = cluster_of(2)
    kb_id = make_kb_id()
    reference = learn_corpus(cluster.backend, kb_id, 60, seed=11)
    gate = threading.Event()

    def make(progress):
        def held_at_copy(phase: str, figures: dict) -> None:
            progress(phase, figures)
            if phase == "copying":
                gate.wait(30)
        return cluster.resharder(progress=held_at_copy)

    runner = ReshardRunner(make, redis_client, pattern_log.keys.namespace, after=cluster.backend.refresh_map)
    elsewhere = ReshardRunner(make, redis_client, pattern_log.keys.namespace)  # another replica's
    assert runner.start(3) == {"status": "started", "to_shards": 3}
    wait_for(runner, ("copying",))
    with pytest.raises(Conflict, match="already running"):
        elsewhere.start(4)
    with pytest.raises(Conflict, match="cannot be aborted"):
        elsewhere.abort()
    gate.set()
    done = wait_for(runner, ("done", "failed"))
    assert done["phase"] == "done" and done["to_shards"] == 3 and done["rows_copied"] > 0
    assert done["write_pause_ms"] < FREEZE_MS
    assert_exactly_once(cluster, kb_id, reference)
    assert elsewhere.start(2)["status"] == "started"  # the lease is free again
    assert wait_for(elsewhere, ("done", "failed"))["phase"] == "done"
