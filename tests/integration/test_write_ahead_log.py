"""The write-ahead log in front of ClickHouse: a learn is served before it is stored, stored exactly once, and
survives a crash at every step (after the commit, before a shard read it; before and after the insert; after the
trim), with statistics counted once."""

from __future__ import annotations

import pytest

from actors.shard import Shard
from actors.stored_shard import FlushPolicy, StoredShard
from cluster.stores.learn_commit import LogFull
from cluster.stores.pattern_log import log_appends
from cluster.stores.redis_kb import RedisKB
from schema.errors import ServiceUnavailable
from schema.learning import make_pattern
from schema.pattern_rows import pattern_table
from schema.placement import even_ranges, owners
from schema.rules.query import QueryOptions
from serve_app.cluster_backend import ClusterBackend
from serve_app.local_shards import LocalShards
from tests.integration.redis_keys import kb_key

pytestmark = pytest.mark.integration
REDIS_KINDS = ("single", "cluster")  # each Redis test runs on a single server and on a Redis Cluster


class Crash(RuntimeError):
    """Stands for the process dying at a step: whatever the step did not do is not done."""


def shards_for(chdb_store, pattern_log, count: int = 2, crash_at=None) -> list[StoredShard]:
    return [StoredShard(Shard(r.shard_id, r.lo, r.hi), chdb_store, pattern_log, FlushPolicy(max_rows=50),
                        crash_at=crash_at) for r in even_ranges(count)]


def backend_for(shards: list[StoredShard], redis_client, bound: int = 1_000_000) -> ClusterBackend:
    return ClusterBackend(LocalShards(shards), even_ranges(len(shards)), RedisKB(redis_client, log_bound=bound),
                          log_keys=shards[0].log.keys)


def patterns(n: int, tag: str = "p") -> list:
    return [make_pattern([[f"{tag}{i}"], [f"{tag}{i + 1}", "shared"], ["end"]]) for i in range(n)]


def load(shards: list[StoredShard], kb_id: str) -> int:
    """Start the shards (on ``kb_id`` only: the test store holds every test's KBs); how many patterns they hold."""
    for shard in shards:
        shard.load(kb_id)
    return sum(shard.count(kb_id) for shard in shards)


def stored_rows(store, kb_id: str) -> int:
    """Rows as stored, duplicates included (no FINAL)."""
    sql = "SELECT count() AS n FROM kato.patterns_data WHERE kb_id = {kb_id:String}"
    return int(store._query_table(sql, {"kb_id": kb_id}).column("n")[0].as_py())


def test_a_learn_is_served_before_it_is_stored_and_stored_once_flushed(chdb_store, redis_client, pattern_log,
                                                                        make_kb_id):
    kb_id = make_kb_id()
    shards = shards_for(chdb_store, pattern_log)
    backend = backend_for(shards, redis_client)
    learned = patterns(120)
    assert all(backend.learn_batch(kb_id, learned, 5))
    predictions, _ = backend.predict(kb_id, [["p7"], ["p8"]], QueryOptions(0.1, 10))
    assert predictions and predictions[0]["name"] == learned[7].name  # read-your-writes, from the log
    assert stored_rows(chdb_store, kb_id) == 0
    assert sum(s.stats().log_rows for s in shards) == 120
    assert sum(s.flush() for s in shards) == 120
    assert stored_rows(chdb_store, kb_id) == 120
    assert all(s.stats().log_rows == 0 and s.stats().log_entries == 0 for s in shards)
    assert sum(s.flush() for s in shards) == 0  # nothing left; nothing inserted twice
    assert stored_rows(chdb_store, kb_id) == 120


def test_a_learn_reaches_the_shards_through_their_logs_on_their_next_read(chdb_store, redis_client, pattern_log,
                                                                          make_kb_id):
    """The learn does not call the shards; their next read, from another replica too, indexes what their logs
    gained, and later reads index only what is newer (also after the flusher trimmed what they had)."""
    kb_id = make_kb_id()
    shards = shards_for(chdb_store, pattern_log)
    writer, reader = backend_for(shards, redis_client), backend_for(shards, redis_client)
    learned = patterns(40)
    assert all(writer.learn_batch(kb_id, learned, 5))
    assert sum(s.shard.count(kb_id) for s in shards) == 0, "the learn waited for the shards"
    predictions, _ = reader.predict(kb_id, [["p7"], ["p8"]], QueryOptions(0.1, 10))
    assert predictions[0]["name"] == learned[7].name
    assert sum(s.shard.count(kb_id) for s in shards) == 40
    assert sum(s.flush() for s in shards) == 40
    writer.learn(kb_id, patterns(1, "q")[0], 5)
    assert sum(s.catch_up(kb_id) for s in shards) == 1
    assert sum(s.catch_up(kb_id) for s in shards) == 0
    assert reader.pattern_events(kb_id, patterns(1, "q")[0].name) == [["q0"], ["q1", "shared"], ["end"]]


def test_relearning_logs_nothing_and_counts_once(chdb_store, redis_client, pattern_log, make_kb_id):
    kb_id = make_kb_id()
    shards = shards_for(chdb_store, pattern_log)
    backend = backend_for(shards, redis_client)
    pattern = patterns(1)[0]
    backend.learn(kb_id, pattern, 5)
    backend.learn(kb_id, pattern, 5)
    assert sum(s.stats().log_rows for s in shards) == 1
    assert redis_client.get(kb_key(redis_client, kb_id, f"frequency:{pattern.name}")) == "2"
    assert redis_client.get(kb_key(redis_client, kb_id, "global:total_unique_patterns")) == "1"


def test_a_commit_whose_replica_died_is_served_after_a_restart(chdb_store, redis_client,
                                                                               pattern_log, make_kb_id):
    """The replica committed (statistics and log) and died; the shards restart and read their logs."""
    kb_id = make_kb_id()
    ranges = even_ranges(2)
    learned = patterns(30)
    table = pattern_table(kb_id, learned)
    owner = owners(table.column("bucket").to_numpy().astype("int64"), ranges)
    keys = pattern_log.keys
    RedisKB(redis_client).learn_batch(kb_id, learned, 5, lambda names: log_appends(keys, kb_id, table, owner, names),
                                      [(keys.registry(s), kb_id) for s in set(owner.tolist())])
    restarted = shards_for(chdb_store, pattern_log)
    assert load(restarted, kb_id) == 30
    predictions, _ = backend_for(restarted, redis_client).predict(kb_id, [["p3"], ["p4"]], QueryOptions(0.1, 5))
    assert predictions[0]["name"] == learned[3].name and predictions[0]["frequency"] == 1
    assert sum(s.flush() for s in restarted) == 30 and stored_rows(chdb_store, kb_id) == 30


@pytest.mark.parametrize("step", ["before_insert", "after_insert", "after_trim"])
def test_a_crash_at_any_flush_step_loses_nothing_and_duplicates_nothing(chdb_store, redis_client, pattern_log,
                                                                        make_kb_id, step):
    kb_id = make_kb_id(step)

    def crash(at: str) -> None:
        if at == step:
            raise Crash(at)

    shards = shards_for(chdb_store, pattern_log, crash_at=crash)
    backend = backend_for(shards, redis_client)
    learned = patterns(200)
    backend.learn_batch(kb_id, learned, 5)
    backend.learn_batch(kb_id, learned[:50], 5)  # re-learns: frequency 2, counted once each
    for shard in shards:
        with pytest.raises(Crash):
            shard.flush()
    restarted = shards_for(chdb_store, pattern_log)
    assert load(restarted, kb_id) == 200
    for shard in restarted:
        shard.flush()
    assert stored_rows(chdb_store, kb_id) == 200, "a row the store already had was inserted again"
    assert chdb_store.count(kb_id) == 200
    assert sum(s.stats().log_rows for s in restarted) == 0
    frequencies = redis_client.mget([kb_key(redis_client, kb_id, f"frequency:{p.name}") for p in learned])
    assert frequencies == ["2"] * 50 + ["1"] * 150
    assert redis_client.get(kb_key(redis_client, kb_id, "global:total_unique_patterns")) == "200"
    again = shards_for(chdb_store, pattern_log)
    assert load(again, kb_id) == 200


def test_a_store_outage_grows_the_log_then_drains_it(chdb_store, redis_client, pattern_log, make_kb_id):
    """The store refuses inserts (its table is away) while learns go on; once it is back, the log drains."""
    kb_id = make_kb_id()
    shards = shards_for(chdb_store, pattern_log, count=1)
    backend = backend_for(shards, redis_client)
    chdb_store._command("RENAME TABLE kato.patterns_data TO kato.patterns_data_away")
    try:
        backend.learn_batch(kb_id, patterns(40), 5)  # acknowledged while the store is down
        with pytest.raises(Exception, match="patterns_data"):
            shards[0].flush()
        shards[0].start_flusher()
        backend.learn_batch(kb_id, patterns(10, "q"), 5)
        assert _eventually(lambda: shards[0].stats().last_flush_error is not None)
        assert shards[0].stats().log_rows == 50
        predictions, _ = backend.predict(kb_id, [["q1"], ["q2"]], QueryOptions(0.1, 5))
        assert predictions, "learns made during the outage are served"
    finally:
        chdb_store._command("RENAME TABLE kato.patterns_data_away TO kato.patterns_data")
    try:
        assert _eventually(lambda: shards[0].stats().log_rows == 0)
        assert shards[0].stats().last_flush_error is None
    finally:
        shards[0].stop_flusher()
    assert stored_rows(chdb_store, kb_id) == 50


def test_a_full_log_refuses_learns_with_503_and_counts_nothing(chdb_store, redis_client, pattern_log, make_kb_id):
    kb_id = make_kb_id()
    shards = shards_for(chdb_store, pattern_log, count=1)
    backend = backend_for(shards, redis_client, bound=25)
    backend.learn_batch(kb_id, patterns(20), 5)
    with pytest.raises(LogFull) as info:
        backend.learn_batch(kb_id, patterns(10, "q"), 5)
    assert isinstance(info.value, ServiceUnavailable) and info.value.retry_after >= 1
    unique = redis_client.get(kb_key(redis_client, kb_id, "global:total_unique_patterns"))
    assert unique == "20"  # the refused batch left no trace
    shards[0].flush()
    assert all(backend.learn_batch(kb_id, patterns(10, "q"), 5))


def test_clear_all_drops_the_log_with_the_patterns(chdb_store, redis_client, pattern_log, make_kb_id):
    kb_id = make_kb_id()
    shards = shards_for(chdb_store, pattern_log)
    backend = backend_for(shards, redis_client)
    backend.learn_batch(kb_id, patterns(20), 5)
    shards[0].flush()
    backend.clear_kb(kb_id)
    assert sum(s.stats().log_rows for s in shards) == 0 and chdb_store.count(kb_id) == 0
    restarted = shards_for(chdb_store, pattern_log)
    assert load(restarted, kb_id) == 0


def _eventually(check, seconds: float = 20.0) -> bool:
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def test_freed_memory_goes_back_to_the_os_after_a_load_and_after_each_burst_of_flushes(chdb_store, redis_client,
                                                                                        pattern_log, make_kb_id):
    kb_id = make_kb_id()
    released: list[str] = []

    class Counting(StoredShard):
        def release_memory(self) -> None:
            super().release_memory()  # the engine's purge and the heap trim run for real
            released.append("released")

    shard = Counting(Shard(0, 0, 65535), chdb_store, pattern_log, FlushPolicy(max_rows=50, release_seconds=3600))
    shard.load(kb_id)
    assert released == ["released"]
    backend = backend_for([shard], redis_client)
    for pattern in patterns(30):
        backend.learn(kb_id, pattern, 5)
    shard._after_flush(shard.flush())  # a burst: rows inserted, memory kept for now
    shard._after_flush(shard.flush())  # the burst is over: nothing left to insert
    shard._after_flush(shard.flush())  # nothing was flushed since: nothing to release
    assert released == ["released"] * 2 and stored_rows(chdb_store, kb_id) == 30
    overdue = Counting(Shard(0, 0, 65535), chdb_store, pattern_log, FlushPolicy(max_rows=50, release_seconds=0.0))
    for pattern in patterns(5, "q"):
        backend.learn(kb_id, pattern, 5)
    overdue._after_flush(shard.flush())  # rows flushed and the interval is over: released while busy
    assert released == ["released"] * 3
