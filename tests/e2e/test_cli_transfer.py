"""load / export / import-kato against a running service over HTTP."""

from __future__ import annotations

import json

import pytest
import redis
import requests

from cluster.ops.bench.workloads import standard_patterns
from cluster.ops.transfer import export, import_kato, load, read_rows
from cluster.stores.clickhouse import _ChdbHandle
from schema.naming import kb_id_for, pattern_hash
from tests.e2e.kato_client import KatoClient

pytestmark = pytest.mark.integration


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_load_then_export_round_trip(base_url, tmp_path, suffix):
    rows = [{"events": e, "frequency": 1 + i % 3, "emotives": [{"joy": float(i)}] if i % 2 else [],
             "metadata": {"row": [str(i)]} if i % 4 == 0 else {}}
            for i, e in enumerate(standard_patterns(40, seed=4))]
    source = tmp_path / "in.jsonl"
    write_jsonl(source, rows)
    node = f"transfer_{suffix[1:]}"
    report = load(base_url, str(source), node, batch_rows=7, show_progress=False)
    assert report.rows == 40 and report.learns == sum(r["frequency"] for r in rows) and report.batches == 6
    out = tmp_path / f"out{suffix}"
    assert export(base_url, node, str(out)) == 40
    exported = sorted(read_rows(out), key=lambda r: r["name"])
    expected = sorted(({"name": "PTRN|" + pattern_hash(r["events"]), **r} for r in rows), key=lambda r: r["name"])
    for got, want in zip(exported, expected):
        if suffix == ".parquet":
            got = {**got, "emotives": json.loads(got["emotives"]), "metadata": json.loads(got["metadata"])}
        assert got == want


def test_load_is_resumable_and_never_learns_a_row_twice(base_url, tmp_path):
    rows = [{"events": [[f"r{i}"], [f"s{i}"]]} for i in range(10)]
    source = tmp_path / "resume.jsonl"
    write_jsonl(source, rows)
    first = load(base_url, str(source), "resume_node", batch_rows=4, show_progress=False)
    assert first.learns == 10
    again = load(base_url, str(source), "resume_node", batch_rows=4, show_progress=False)
    assert again.learns == 0 and again.resumed_from == 10  # the server knows every row of this load is done
    viewer = KatoClient(base_url, node_id="resume_node")
    viewer.observe(["r3"])
    viewer.observe(["s3"])
    assert viewer.predictions()[0]["frequency"] == 1

    partial = tmp_path / "partial.jsonl"
    write_jsonl(partial, rows)
    from cluster.ops import transfer

    interrupted = requests.post(  # a load that got through its first 6 rows before the connection broke
        f"{base_url}/bulk/learn", data="".join(json.dumps(r) + "\n" for r in rows[:6]),
        params={"node_id": "resume_node_2", "load_id": transfer._file_id(str(partial), "resume_node_2")},
        headers={"content-type": "application/x-ndjson"})
    assert interrupted.status_code == 200 and interrupted.json()["rows"] == 6
    resumed = load(base_url, str(partial), "resume_node_2", batch_rows=4, show_progress=False)
    assert resumed.resumed_from == 6 and resumed.rows == 4 and resumed.learns == 4


def test_load_rejects_bad_rows_clearly(base_url, tmp_path):
    source = tmp_path / "bad.jsonl"
    source.write_text('{"events": [["a", "b"]]}\nnot json\n')
    with pytest.raises(ValueError, match="bad.jsonl:2"):
        load(base_url, str(source), "bad_node", show_progress=False)


def test_import_kato_moves_and_verifies(base_url, chdb_store, embedded_redis):
    node = "kato_src_node"
    kb = kb_id_for(node)

    def query(sql: str, **options) -> None:  # one call into chdb at a time: the shards' flushers share it
        with _ChdbHandle.calls:
            chdb_store._session.query(sql, **options)

    query("CREATE DATABASE IF NOT EXISTS katosrc")
    query("CREATE TABLE IF NOT EXISTS katosrc.patterns_data (kb_id String, name String, "
          "pattern_data Array(Array(String)), length UInt32, token_set Array(String), token_count UInt32, "
          "minhash_sig Array(UInt32), lsh_bands Array(UInt64), first_token String, last_token String, "
          "created_at DateTime DEFAULT now(), updated_at DateTime DEFAULT now()) "
          "ENGINE = MergeTree() PARTITION BY kb_id ORDER BY (kb_id, length, name)")
    patterns = [[["k1"], ["k2"], ["k3"]], [["k1", "k4"], ["k5"]]]
    for events in patterns:
        query("INSERT INTO katosrc.patterns_data (kb_id, name, pattern_data, length) VALUES "
              "({kb:String}, {name:String}, {data:Array(Array(String))}, {length:UInt32})",
              params={"kb": kb, "name": pattern_hash(events), "data": str(events),
                      "length": str(sum(map(len, events)))})
    source = redis.Redis.from_url(embedded_redis.url, db=3, decode_responses=True)
    source.flushdb()
    first, second = (pattern_hash(p) for p in patterns)
    source.set(f"{kb}:frequency:{first}", 4)
    source.set(f"{kb}:frequency:{second}", 1)
    source.set(f"{kb}:emotives:{first}", json.dumps([{"joy": 0.5}]))
    source.set(f"{kb}:emotives:{second}", "[]")
    source.set(f"{kb}:metadata:{first}", json.dumps({"src": ["kato"]}))
    source.set(f"{kb}:metadata:{second}", "{}")
    source.hset(f"{kb}:symbols:freq", mapping={"k1": 5, "k2": 4, "k3": 4, "k4": 1, "k5": 1})
    source.hset(f"{kb}:symbols:pmf", mapping={"k1": 2, "k2": 1, "k3": 1, "k4": 1, "k5": 1})
    source.hset(f"{kb}:affinity:k1", mapping={"joy": 0.5})
    for key, value in (("total_symbols_in_patterns_frequencies", 15), ("total_pattern_frequencies", 2),
                       ("total_unique_patterns", 2)):
        source.set(f"{kb}:global:{key}", value)
    source.set("other_kb_kato:frequency:x", 1)

    reports = import_kato(base_url, chdb_store, source, [node], table="katosrc.patterns_data")
    assert [(r.kb_id, r.patterns, r.keys, r.verified) for r in reports] == [(kb, 2, 12, True)]
    client = KatoClient(base_url, node_id=node)
    client.observe(["k1"])
    client.observe(["k2"])
    top = client.predictions()[0]
    assert top["name"] == first and top["frequency"] == 4 and top["emotives"] == {"joy": 0.5}
    affinity = requests.get(f"{base_url}/symbols/k1/affinity", params={"node_id": node}).json()["affinity"]
    assert affinity == {"joy": 0.5}
    other = requests.post(f"{base_url}/bulk/import-kato", json={"kb_id": kb, "keys": {
        "someone_else:frequency:x": {"type": "string", "value": "1"}}})
    assert other.status_code == 422


def test_cli_load_and_export_commands(base_url, tmp_path):
    from typer.testing import CliRunner

    from cluster.ops.cli import app

    source = tmp_path / "cli.jsonl"
    write_jsonl(source, [{"events": [["c1"], ["c2"]], "frequency": 2}, {"events": [["c3", "c4"]]}])
    runner = CliRunner()
    loaded = runner.invoke(app, ["load", str(source), "--node", "cli_node", "--url", base_url])
    assert loaded.exit_code == 0, loaded.output
    assert "loaded 2 rows (3 learns, 2 new patterns, 0 skipped)" in loaded.output and "rows/s" in loaded.output
    out = tmp_path / "cli-out.jsonl"
    exported = runner.invoke(app, ["export", "--node", "cli_node", str(out), "--url", base_url])
    assert exported.exit_code == 0 and "exported 2 patterns" in exported.output
    assert sorted(r["frequency"] for r in read_rows(out)) == [1, 2]
    help_text = runner.invoke(app, ["import-kato", "--help"]).output
    assert "--clickhouse" in help_text and "--redis" in help_text
