"""PatternStore on embedded ClickHouse (chdb): DDL, Arrow round trips, bucket ranges, vectors, shard map."""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from cluster.stores.clickhouse import ChdbStore
from schema.ddl import migrations
from schema.errors import StoreError
from schema.learning import make_pattern
from schema.pattern_rows import INDEX_SCHEMA, PATTERN_SCHEMA, pattern_table
from tests.integration.patterns_gen import random_patterns

pytestmark = pytest.mark.integration


def _read_all(batches, schema: pa.Schema = PATTERN_SCHEMA) -> pa.Table:
    return pa.Table.from_batches(list(batches), schema=schema)


def test_ddl_is_idempotent_and_versioned(chdb_store):
    assert chdb_store.apply_ddl() == []  # the fixture already applied everything
    assert chdb_store.apply_ddl() == []
    assert chdb_store.applied_versions() == [m.version for m in migrations()] == [1, 2, 3, 4, 5, 6]


def test_second_data_dir_in_one_process_is_refused(chdb_store, tmp_path):
    with pytest.raises(StoreError, match="one data directory per process"):
        ChdbStore(str(tmp_path / "other"))
    same = ChdbStore(chdb_store.path)  # same path: shares the embedded server
    assert same.health()
    same.close()
    assert chdb_store.health()


def test_pattern_row_columns(chdb_store, make_kb_id):
    kb = make_kb_id()
    p = make_pattern([["b", "a"], ["c", "a"]])
    chdb_store.insert_patterns(pattern_table(kb, [p]))
    row = chdb_store.get_patterns(kb, [p.name]).to_pylist()[0]
    assert row["pattern_data"] == [["b", "a"], ["c", "a"]]
    assert row["length"] == 4 and row["token_set"] == ["a", "b", "c"] and row["token_count"] == 3
    assert row["first_token"] == "b" and row["last_token"] == "a"
    assert len(row["minhash_sig"]) == 100 and len(row["lsh_bands"]) == 20
    assert 0 <= row["bucket"] < 65536


def test_reinserting_a_pattern_never_duplicates_it(chdb_store, make_kb_id):
    kb = make_kb_id()
    patterns = random_patterns(50, seed=3)
    table = pattern_table(kb, patterns)
    for _ in range(3):
        chdb_store.insert_patterns(table)
    assert chdb_store.count(kb) == 50
    got = _read_all(chdb_store.iter_bucket_range(kb, 0, 65535))
    assert got.num_rows == 50
    assert sorted(got.column("name").to_pylist()) == sorted(p.name for p in patterns)
    assert chdb_store.get_patterns(kb, [patterns[0].name] * 2).num_rows == 1


def test_arrow_round_trip_100k(chdb_store, make_kb_id):
    kb = make_kb_id()
    patterns = random_patterns(100_000, seed=11)
    table = pattern_table(kb, patterns)
    start = time.perf_counter()
    chdb_store.insert_patterns(table)
    inserted = time.perf_counter()
    got = _read_all(chdb_store.iter_bucket_range(kb, 0, 65535, batch_rows=20_000))
    read = time.perf_counter()
    assert got.schema.equals(PATTERN_SCHEMA)
    assert got.num_rows == 100_000 == chdb_store.count(kb)
    order = [("name", "ascending")]
    assert got.sort_by(order).equals(table.sort_by(order))
    print(f"100k: insert {inserted - start:.2f}s, read {read - inserted:.2f}s")


def test_bucket_range_reads_exactly_the_range(chdb_store, make_kb_id):
    kb, other = make_kb_id("a"), make_kb_id("b")
    patterns = random_patterns(3000, seed=5)
    table = pattern_table(kb, patterns)
    chdb_store.insert_patterns(table)
    chdb_store.insert_patterns(pattern_table(other, patterns[:500]))
    buckets = sorted(set(table.column("bucket").to_pylist()))
    lo, hi = buckets[100], buckets[900]  # both ends are occupied buckets: inclusive bounds are tested
    batches = list(chdb_store.iter_bucket_range(kb, lo, hi, batch_rows=97))
    assert batches and all(0 < b.num_rows <= 97 for b in batches)
    got = _read_all(batches)
    mask = pc.and_(pc.greater_equal(table.column("bucket"), lo), pc.less_equal(table.column("bucket"), hi))
    expected = table.filter(mask)
    assert sorted(got.column("name").to_pylist()) == sorted(expected.column("name").to_pylist())
    assert set(got.column("kb_id").to_pylist()) == {kb}
    assert got.column("bucket").to_pylist() == sorted(got.column("bucket").to_pylist())
    single = _read_all(chdb_store.iter_bucket_range(kb, lo, lo))
    assert single.num_rows >= 1 and set(single.column("bucket").to_pylist()) == {lo}
    assert _read_all(chdb_store.iter_bucket_range(kb, hi + 1, hi)).num_rows == 0
    everyone = _read_all(chdb_store.iter_all_buckets(lo, hi))
    both = everyone.filter(pc.is_in(everyone.column("kb_id"), pa.array([kb, other])))
    other_table = pattern_table(other, patterns[:500])
    other_expected = other_table.filter(pc.and_(pc.greater_equal(other_table.column("bucket"), lo),
                                                pc.less_equal(other_table.column("bucket"), hi)))
    assert both.num_rows == expected.num_rows + other_expected.num_rows


def test_stream_survives_interleaved_queries(chdb_store, make_kb_id):
    kb = make_kb_id()
    chdb_store.insert_patterns(pattern_table(kb, random_patterns(400, seed=9)))
    stream = chdb_store.iter_bucket_range(kb, 0, 65535, batch_rows=50)
    first = next(stream)
    assert chdb_store.count(kb) == 400  # another query while the stream is open
    assert first.num_rows + sum(b.num_rows for b in stream) == 400


def test_vectors_round_trip_in_position_order(chdb_store, make_kb_id):
    """Points come back as stored (float32 values exactly), ordered by first-insertion position; storing a name
    again replaces its row (the index writes the position it keeps)."""
    kb, other = make_kb_id("a"), make_kb_id("b")
    f32 = float(np.float32(0.1))
    chdb_store.insert_vectors(kb, ["VCTR|z", "VCTR|y"], [[f32, 0, 0, 0], [0, 1, 0, 0]], [0, 1])
    chdb_store.insert_vectors(kb, ["VCTR|x"], [[0, 0, 1, 0]], [2])
    chdb_store.insert_vectors(kb, ["VCTR|z"], [[0.5, 0, 0, 0]], [0])
    chdb_store.insert_vectors(other, ["VCTR|o"], [[0.95, 0.05, 0, 0]], [0])
    loaded = chdb_store.load_vectors(kb)
    assert [(n, p) for n, _, p in loaded] == [("VCTR|z", 0), ("VCTR|y", 1), ("VCTR|x", 2)]
    assert loaded[0][1].dtype == np.float32 and loaded[0][1].tolist() == [0.5, 0, 0, 0]
    chdb_store.insert_vectors(kb, ["VCTR|w"], [[f32, 0, 0, 0]], [3])
    assert chdb_store.load_vectors(kb)[3][1].tolist() == [f32, 0, 0, 0]
    assert chdb_store.load_vectors(make_kb_id("empty")) == []
    with pytest.raises(ValueError):
        chdb_store.insert_vectors(kb, ["VCTR|d", "VCTR|d"], [[1, 0, 0, 0], [2, 0, 0, 0]], [4, 4])
    chdb_store.drop_vectors(kb)
    assert chdb_store.load_vectors(kb) == [] and len(chdb_store.load_vectors(other)) == 1


def test_drop_kb_only_touches_that_kb(chdb_store, make_kb_id):
    kb, other = make_kb_id("a"), make_kb_id("b")
    patterns = random_patterns(200, seed=21)
    for k in (kb, other):
        chdb_store.insert_patterns(pattern_table(k, patterns))
        chdb_store.insert_vectors(k, ["VCTR|v"], [[1.0, 2.0]])
    chdb_store.drop_kb(kb)
    chdb_store.drop_kb(make_kb_id("never-existed"))
    assert chdb_store.count(kb) == 0 and chdb_store.load_vectors(kb) == []
    assert chdb_store.count(other) == 200 and [n for n, _, _ in chdb_store.load_vectors(other)] == ["VCTR|v"]


def test_empty_inputs(chdb_store, make_kb_id):
    kb = make_kb_id()
    chdb_store.insert_patterns(pattern_table(kb, []))
    assert chdb_store.get_patterns(kb, []).schema.equals(PATTERN_SCHEMA)
    assert chdb_store.get_patterns(kb, ["0" * 40]).num_rows == 0
    assert list(chdb_store.iter_bucket_range(kb, 0, 65535)) == []
    assert chdb_store.count(kb) == 0


def test_a_shard_load_reads_only_the_columns_of_its_index(chdb_store, make_kb_id):
    kb = make_kb_id()
    table = pattern_table(kb, random_patterns(300, seed=8))
    chdb_store.insert_patterns(table)
    got = _read_all(chdb_store.iter_bucket_range(kb, 0, 65535, schema=INDEX_SCHEMA), INDEX_SCHEMA)
    assert got.schema.equals(INDEX_SCHEMA)
    order = [("name", "ascending")]
    assert got.sort_by(order).equals(table.select(INDEX_SCHEMA.names).sort_by(order))
    everyone = _read_all(chdb_store.iter_all_buckets(0, 65535, schema=INDEX_SCHEMA), INDEX_SCHEMA)
    assert everyone.schema.equals(INDEX_SCHEMA) and kb in everyone.column("kb_id").to_pylist()
    with pytest.raises(ValueError, match="not columns of a pattern row"):
        list(chdb_store.iter_bucket_range(kb, 0, 65535, schema=pa.schema([pa.field("secret", pa.string())])))
