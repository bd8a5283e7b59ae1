"""The ClickHouse-server engine without a server (none is installable here): DSN parsing, and that every
statement it sends is constant text with values only in ``parameters`` / Arrow payloads.

The recording client below stands in for clickhouse-connect's transport only; the SQL layer it records is
the same code the chdb engine runs against real ClickHouse in the other tests.
"""

from __future__ import annotations

import re

import pyarrow as pa
import pytest

from cluster.stores import clickhouse as store_module
from cluster.stores.clickhouse import HttpStore, open_pattern_store, parse_http_dsn
from schema.learning import make_pattern
from schema.pattern_rows import PATTERN_SCHEMA, pattern_table

pytestmark = pytest.mark.integration

HOSTILE = "x'; DROP TABLE kato.patterns_data; --{kb_id:String}"


class RecordingClient:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict | None]] = []

    def command(self, sql, parameters=None, **_):
        self.calls.append(("command", sql, parameters))

    def query_arrow(self, sql, parameters=None, **_):
        self.calls.append(("query", sql, parameters))
        if "count() AS n" in sql:
            return pa.table({"n": pa.array([0], pa.uint64())})
        if "max(version) AS v" in sql:
            return pa.table({"v": pa.array([0], pa.uint64()), "n": pa.array([0], pa.uint64())})
        if sql.startswith("SELECT name, vector, position"):
            return pa.table({"name": pa.array([], pa.string()), "vector": pa.array([], pa.list_(pa.float64())),
                             "position": pa.array([], pa.uint64())})
        if sql.startswith("SELECT name,"):
            return pa.table({"name": pa.array([], pa.string())})
        if "schema_migrations" in sql:
            return pa.table({"version": pa.array([], pa.uint32())})
        return PATTERN_SCHEMA.empty_table()

    def query_arrow_stream(self, sql, parameters=None, **_):
        self.calls.append(("stream", sql, parameters))

        class _Ctx:
            def __enter__(self):
                return iter([PATTERN_SCHEMA.empty_table()])

            def __exit__(self, *exc):
                return False

        return _Ctx()

    def insert_arrow(self, table, arrow_table, database=None, **_):
        self.calls.append(("insert", f"{database}.{table}", {"rows": arrow_table.num_rows}))

    def close(self) -> None:
        pass


def test_dsn_parsing():
    d = parse_http_dsn("http://ch.local:8123?user=alice&password=s%3Bcret")
    assert (d.host, d.port, d.secure, d.username, d.password) == ("ch.local", 8123, False, "alice", "s;cret")
    d = parse_http_dsn("https://bob:pw@ch.example")
    assert (d.port, d.secure, d.username, d.password) == (8443, True, "bob", "pw")
    assert parse_http_dsn("http://h").username == "default"
    for bad in ("ftp://h:1", "http://", "chdb:relative"):
        with pytest.raises(ValueError):
            open_pattern_store(bad)


def test_http_engine_without_server_fails_clearly():
    with pytest.raises(Exception, match="(?i)connect|refused|error"):
        open_pattern_store("http://127.0.0.1:9?user=x")


def test_http_engine_sends_parameterized_sql_only():
    client = RecordingClient()
    store = HttpStore(client)
    store.apply_ddl()
    migrations_sent = len(client.calls)  # the migrations' own DDL (one of them drops an old table)
    p = make_pattern([[HOSTILE, "b"]])
    store.insert_patterns(pattern_table(HOSTILE, [p]))
    list(store.iter_bucket_range(HOSTILE, 3, 7))
    list(store.iter_all_buckets(0, 10))
    store.get_patterns(HOSTILE, [p.name, HOSTILE])
    store.count(HOSTILE)
    store.drop_kb(HOSTILE)
    store.insert_vectors(HOSTILE, [f"VCTR|{HOSTILE}"], [[1.0, 2.0]])
    assert store.load_vectors(HOSTILE) == []
    store.drop_vectors(HOSTILE)
    store.delete_outside(3, 7)
    sent_params = [params for _, _, params in client.calls if params]
    assert any(HOSTILE in (params.get("kb_id"), *(params.get("names") or ())) for params in sent_params)
    for i, (kind, sql, params) in enumerate(client.calls):
        assert HOSTILE not in sql and p.name not in sql
        assert i < migrations_sent or "DROP TABLE" not in sql
        if kind in ("command", "query", "stream") and params:
            placeholders = set(re.findall(r"\{(\w+):[^}]+\}", sql))
            assert placeholders == set(params), sql
    assert ("insert", "kato.patterns_data", {"rows": 1}) in client.calls


def test_sql_constants_have_no_python_format_fields():
    statements = [v for k, v in vars(store_module).items() if k.startswith("SQL_")]
    assert len(statements) >= 10
    for sql in statements:
        assert "%" not in sql
        assert all(re.fullmatch(r"\w+:[A-Za-z0-9()]+", f) for f in re.findall(r"\{([^}]*)\}", sql)), sql
