"""Clear-all isolation between KBs, and hostile node ids stored and read back verbatim (both engines)."""

from __future__ import annotations

import pytest

from cluster.stores.redis_kb import RedisKB
from schema.learning import make_pattern
from schema.naming import kb_id_for
from schema.pattern_rows import pattern_table
from tests.integration.patterns_gen import random_patterns
from tests.integration.redis_keys import kb_key

pytestmark = pytest.mark.integration
REDIS_KINDS = ("single", "cluster")  # each Redis test runs on a single server and on a Redis Cluster

HOSTILE_NODES = [
    "it's",
    'a"; DROP TABLE kato.patterns_data; --',
    "../../etc/passwd",
    "*",
    "[abc]",
    "x' OR '1'='1",
    "\\'; SELECT 1; \\",
    "tab\there\nnewline",
    "{kb_id:String}",
    "ünï\u00e7ødé 中文",
]


def _keys(client, kb_id: str) -> set[str]:
    return {k for k in client.scan_iter(count=1000) if k.startswith(kb_key(client, kb_id, ""))}


def _fill(store, rk: RedisKB, kb: str, seed: int):
    patterns = random_patterns(120, seed=seed)
    store.insert_patterns(pattern_table(kb, patterns))
    store.insert_vectors(kb, ["VCTR|v1", "VCTR|v2"], [[1.0, 0.0], [0.0, 1.0]])
    stm = make_pattern([["a", "b"]], emotives=[{"joy": 1.0}], metadata=[{"k": 1}])
    rk.learn_batch(kb, [*patterns[:30], stm], 5)
    rk.write_intrinsics(kb, {})
    return patterns


def test_clear_all_isolation(chdb_store, redis_client, make_kb_id):
    rk = RedisKB(redis_client, symbol_to_patterns=True)
    a, b = make_kb_id("a"), make_kb_id("b")
    _fill(chdb_store, rk, a, 1)
    _fill(chdb_store, rk, b, 2)
    b_keys = {k: redis_client.type(k) for k in _keys(redis_client, b)}
    assert len(b_keys) > 50
    chdb_store.drop_kb(a)
    rk.clear_kb(a)
    assert chdb_store.count(a) == 0 and chdb_store.load_vectors(a) == []
    assert _keys(redis_client, a) == set()
    assert chdb_store.count(b) == 120 and [n for n, _, _ in chdb_store.load_vectors(b)] == ["VCTR|v1", "VCTR|v2"]
    assert {k: redis_client.type(k) for k in _keys(redis_client, b)} == b_keys


@pytest.mark.parametrize("node_id", HOSTILE_NODES)
def test_hostile_node_id_round_trips_verbatim(chdb_store, redis_client, make_kb_id, node_id):
    kb = kb_id_for(node_id + make_kb_id())  # stays hostile: quotes, ';', '[', '{' survive kb_id_for
    neighbour = make_kb_id("neighbour")
    rk = RedisKB(redis_client)
    _fill(chdb_store, rk, neighbour, 3)
    neighbour_keys = _keys(redis_client, neighbour)

    p = make_pattern([[node_id, "b"], ["c"]], emotives=[{"joy": 0.5}], metadata=[{"node": node_id}])
    chdb_store.insert_patterns(pattern_table(kb, [p]))
    chdb_store.insert_vectors(kb, [f"VCTR|{node_id}"], [[0.5, 0.5]])
    rk.learn(kb, p, 5)

    row = chdb_store.get_patterns(kb, [p.name]).to_pylist()[0]
    assert row["kb_id"] == kb and row["pattern_data"] == [[node_id, "b"], ["c"]]
    assert [b.num_rows for b in chdb_store.iter_bucket_range(kb, 0, 65535)] == [1]
    assert [n for n, _, _ in chdb_store.load_vectors(kb)] == [f"VCTR|{node_id}"]
    assert rk.pattern_info(kb, p.name)["metadata"] == {"node": [node_id]}
    assert rk.symbol_stats(kb)[node_id]["frequency"] == 1
    assert rk.affinities(kb)[node_id] == {"joy": 0.5}

    chdb_store.drop_kb(kb)
    rk.clear_kb(kb)
    assert chdb_store.count(kb) == 0 and _keys(redis_client, kb) == set()
    assert chdb_store.count(neighbour) == 120 and _keys(redis_client, neighbour) == neighbour_keys
