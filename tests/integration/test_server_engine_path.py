"""The ClickHouse-server engine's code path (``HttpStore``) with the write-ahead log, end to end, run against
clickhouse-connect's own chDB backend (the same client API the server engine uses; no ClickHouse server
installs here). In a child process: chdb serves one data directory per process, and this one has the tests'."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from cluster.ops.launcher import project_root

pytestmark = pytest.mark.integration

SCRIPT = textwrap.dedent("""
    import json, sys
    import clickhouse_connect
    from actors.shard import Shard
    from actors.stored_shard import StoredShard
    from cluster.stores.clickhouse import HttpStore
    from cluster.stores.pattern_log import PatternLog
    from cluster.stores.redis_client import connect
    from cluster.stores.redis_kb import RedisKB
    from schema.learning import make_pattern
    from schema.placement import even_ranges
    from schema.rules.query import QueryOptions
    from serve_app.cluster_backend import ClusterBackend
    from serve_app.local_shards import LocalShards

    path, redis_url, kb = sys.argv[1:4]
    store = HttpStore(clickhouse_connect.get_client(dsn=f"chdb://{path}"))
    store.apply_ddl()
    log = PatternLog.from_url(redis_url, kb)
    ranges = even_ranges(2)

    def backend():
        shards = [StoredShard(Shard(r.shard_id, r.lo, r.hi), store, log) for r in ranges]
        for shard in shards:
            shard.load(kb)
        return ClusterBackend(LocalShards(shards), ranges, RedisKB(connect(redis_url)), log_keys=log.keys), shards

    first, shards = backend()
    patterns = [make_pattern([[f"e{i}"], [f"f{i}", "g"], ["h"]]) for i in range(150)]
    first.learn_batch(kb, patterns, 5)
    first.learn_batch(kb, patterns[:10], 5)
    half = shards[0].flush()
    second, shards = backend()  # restarted: one shard's rows from the store, the other's from its log
    loaded = sum(s.count(kb) for s in shards)
    rest = sum(s.flush() for s in shards)
    predictions, _ = second.predict(kb, [["e3"], ["f3", "g"]], QueryOptions(0.1, 5))
    print(json.dumps({"first_flush": half, "loaded": loaded, "second_flush": rest, "stored": store.count(kb),
                      "top": predictions[0]["name"], "frequency": predictions[0]["frequency"],
                      "expected": patterns[3].name}))
""")


def test_the_server_engine_path_logs_flushes_and_reloads(tmp_path, embedded_redis, redis_client, make_kb_id):
    kb_id = make_kb_id()
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "chdb"), embedded_redis.url, kb_id],
                          cwd=project_root(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert 0 < result["first_flush"] < 150
    assert result["loaded"] == 150 and result["first_flush"] + result["second_flush"] == 150
    assert result["stored"] == 150
    assert result["top"] == result["expected"] and result["frequency"] == 2
