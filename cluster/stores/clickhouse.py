"""The durable pattern store: one interface, two ClickHouse engines chosen by DSN.

- ``chdb:///abs/path``: embedded ClickHouse (chdb session API). chdb runs one embedded server per process,
  bound to one data directory; stores opened on the same path in one process share it.
- ``http(s)://host:port[?user=&password=]``: a ClickHouse server via clickhouse-connect.

All SQL below is constant text with ``{name:Type}`` placeholders; values travel as query parameters
(server-side binding) or as Arrow tables, never formatted into the statement. The engines differ only in
the four transport primitives at the bottom of ``PatternStore``.
"""

from __future__ import annotations

import contextlib
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import numpy as np
import pyarrow as pa

from schema.ddl import BOOTSTRAP, DATABASE, migrations
from schema.errors import StoreError, StoreUnavailable
from schema.pattern_rows import PATTERN_COLUMNS, PATTERN_SCHEMA

Params = Mapping[str, Any]

_COLS = ", ".join(PATTERN_COLUMNS)
_PATTERNS = f"{DATABASE}.patterns_data"
_VECTORS = f"{DATABASE}.vectors"
SQL_INSERT_MIGRATION = f"INSERT INTO {DATABASE}.schema_migrations (version) SELECT {{version:UInt32}}"
SQL_APPLIED = f"SELECT DISTINCT version FROM {DATABASE}.schema_migrations ORDER BY version"
SQL_RANGE = (f"FROM {_PATTERNS} FINAL WHERE kb_id = {{kb_id:String}} "
             "AND bucket BETWEEN {lo:UInt32} AND {hi:UInt32} ORDER BY bucket, name")  # after SELECT columns
SQL_RANGE_ALL = (f"FROM {_PATTERNS} FINAL WHERE bucket BETWEEN {{lo:UInt32}} AND {{hi:UInt32}} "
                 "ORDER BY kb_id, bucket, name")
SQL_GET = (f"SELECT {_COLS} FROM {_PATTERNS} FINAL WHERE kb_id = {{kb_id:String}} "
           "AND name IN {names:Array(String)} ORDER BY name")
SQL_COUNT = f"SELECT count() AS n FROM {_PATTERNS} FINAL WHERE kb_id = {{kb_id:String}}"
SQL_EXISTING = (f"SELECT DISTINCT name FROM {_PATTERNS} WHERE kb_id = {{kb_id:String}} "
                "AND name IN {names:Array(String)}")
EXISTING_CHUNK = 20_000
SQL_DELETE_OUTSIDE = (f"ALTER TABLE {_PATTERNS} DELETE WHERE bucket < {{lo:UInt32}} OR bucket > {{hi:UInt32}} "
                      "SETTINGS mutations_sync = 1")
SQL_PARTS = ("SELECT count() AS n FROM system.parts WHERE database = 'kato' AND table = 'patterns_data' "
             "AND active")
SQL_DROP_PATTERNS = f"ALTER TABLE {_PATTERNS} DROP PARTITION {{kb_id:String}}"
SQL_DROP_VECTORS = f"ALTER TABLE {_VECTORS} DROP PARTITION {{kb_id:String}}"
SQL_VECTORS = (f"SELECT name, vector, position FROM {_VECTORS} FINAL WHERE kb_id = {{kb_id:String}} "
               "ORDER BY position, name")
VECTOR_SCHEMA = pa.schema([
    pa.field("kb_id", pa.string(), nullable=False),
    pa.field("name", pa.string(), nullable=False),
    pa.field("vector", pa.list_(pa.field("item", pa.float64(), nullable=False)), nullable=False),
    pa.field("position", pa.uint64(), nullable=False),
])
# Insert targets: table name -> column list. Only these constants are ever interpolated into SQL.
_INSERT_TARGETS = {
    "patterns_data": PATTERN_COLUMNS,
    "vectors": tuple(VECTOR_SCHEMA.names),
}


class PatternStore(ABC):
    """Patterns and vectors of every KB, in database ``kato`` (the shard map lives in Redis:
    ``cluster.stores.shard_map``)."""

    # ------------------------------------------------------------------ schema
    def apply_ddl(self) -> list[int]:
        """Create what is missing; returns the migration versions applied by this call."""
        for statement in BOOTSTRAP:
            self._command(statement)
        applied = set(self._query_table(SQL_APPLIED).column("version").to_pylist())
        done = []
        for migration in migrations():
            if migration.version in applied:
                continue
            for statement in migration.statements:
                self._command(statement)
            self._command(SQL_INSERT_MIGRATION, {"version": migration.version})
            done.append(migration.version)
        return done

    def applied_versions(self) -> list[int]:
        return self._query_table(SQL_APPLIED).column("version").to_pylist()

    # ---------------------------------------------------------------- patterns
    def release_memory(self) -> None:
        """Give memory the engine keeps after inserts and merges back to the OS (embedded engine only)."""
        return None

    def insert_patterns(self, table: pa.Table) -> None:
        """Batch insert rows shaped like ``PATTERN_SCHEMA`` (see ``schema.pattern_rows.pattern_table``)."""
        if table.num_rows:
            self._insert_arrow("patterns_data", _conform(table, PATTERN_SCHEMA))

    def iter_bucket_range(self, kb_id: str, lo: int, hi: int, batch_rows: int = 65536,
                          schema: pa.Schema = PATTERN_SCHEMA) -> Iterator[pa.RecordBatch]:
        """Rows of one KB with ``lo <= bucket <= hi``, streamed in batches of at most ``batch_rows``, with the
        columns of ``schema`` (a part of ``PATTERN_SCHEMA``, e.g. ``INDEX_SCHEMA``)."""
        yield from self._batches(SQL_RANGE, {"kb_id": kb_id, "lo": lo, "hi": hi}, batch_rows, schema)

    def iter_all_buckets(self, lo: int, hi: int, batch_rows: int = 65536,
                         schema: pa.Schema = PATTERN_SCHEMA) -> Iterator[pa.RecordBatch]:
        """Rows of every KB with ``lo <= bucket <= hi`` (what a shard loads for its range)."""
        yield from self._batches(SQL_RANGE_ALL, {"lo": lo, "hi": hi}, batch_rows, schema)

    def get_patterns(self, kb_id: str, names: Sequence[str]) -> pa.Table:
        if not names:
            return PATTERN_SCHEMA.empty_table()
        table = self._query_table(SQL_GET, {"kb_id": kb_id, "names": list(names)})
        return _conform(table, PATTERN_SCHEMA)

    def existing_names(self, kb_id: str, names: Sequence[str]) -> set[str]:
        """Which of ``names`` the store holds for this KB (the flusher leaves those out of its insert)."""
        found: set[str] = set()
        unique = list(dict.fromkeys(names))
        for start in range(0, len(unique), EXISTING_CHUNK):
            chunk = unique[start:start + EXISTING_CHUNK]
            found.update(self._query_table(SQL_EXISTING, {"kb_id": kb_id, "names": chunk}).column("name").to_pylist())
        return found

    def delete_outside(self, lo: int, hi: int) -> None:
        """Delete the rows (of every KB) whose home bucket is outside ``lo..hi`` (a range moved away)."""
        self._command(SQL_DELETE_OUTSIDE, {"lo": lo, "hi": hi})

    def active_parts(self) -> int:
        """Active MergeTree parts of the patterns table (each insert makes one per partition it touches)."""
        return int(self._query_table(SQL_PARTS).column("n")[0].as_py())

    def count(self, kb_id: str) -> int:
        return int(self._query_table(SQL_COUNT, {"kb_id": kb_id}).column("n")[0].as_py())

    def drop_kb(self, kb_id: str) -> None:
        """Delete the patterns and vectors of this KB only (its partitions)."""
        self._command(SQL_DROP_PATTERNS, {"kb_id": kb_id})
        self._command(SQL_DROP_VECTORS, {"kb_id": kb_id})

    # ------------------------------------------------------ KATO import source
    def kato_kb_ids(self, table: str = "kato.patterns_data") -> list[str]:
        """The kb_ids present in a KATO ``patterns_data`` table (the source of ``import-kato``)."""
        sql = f"SELECT DISTINCT kb_id FROM {_qualified(table)} ORDER BY kb_id"
        return [str(v) for v in self._query_table(sql).column("kb_id").to_pylist()]

    def kato_patterns(self, kb_id: str, table: str = "kato.patterns_data") -> pa.Table:
        """``name`` and ``pattern_data`` of one KB of a KATO table, one row per name, ordered by name."""
        sql = (f"SELECT name, any(pattern_data) AS pattern_data FROM {_qualified(table)} "
               "WHERE kb_id = {kb_id:String} GROUP BY name ORDER BY name")
        return self._query_table(sql, {"kb_id": kb_id})

    # ----------------------------------------------------------------- vectors
    def insert_vectors(self, kb_id: str, names: Sequence[str], vectors: Sequence[Sequence[float]],
                       positions: Sequence[int] | None = None) -> None:
        """Store indexed points (``actors.vector_index``): each name's vector (float32 values, kept exactly as
        Float64) and its first-insertion position. A name stored again replaces its row (the last insert wins);
        one call must not name a point twice."""
        if len(names) != len(vectors) or (positions is not None and len(positions) != len(names)):
            raise ValueError("names, vectors and positions differ in length")
        if len(set(names)) != len(names):
            raise ValueError("a name occurs twice in one insert")
        if not names:
            return
        table = pa.Table.from_arrays(
            [pa.array([kb_id] * len(names), pa.string()), pa.array(list(names), pa.string()),
             pa.array([np.asarray(v, dtype=np.float64) for v in vectors], VECTOR_SCHEMA.field("vector").type),
             pa.array(list(positions) if positions is not None else range(len(names)), pa.uint64())],
            schema=VECTOR_SCHEMA)
        self._insert_arrow("vectors", table)

    def load_vectors(self, kb_id: str) -> list[tuple[str, np.ndarray, int]]:
        """The KB's stored points as ``(name, float32 vector, position)``, in position order."""
        table = self._query_table(SQL_VECTORS, {"kb_id": kb_id})
        return [(str(name), np.asarray(vector, dtype=np.float64).astype(np.float32), int(position))
                for name, vector, position in zip(table.column("name").to_pylist(),
                                                  table.column("vector").to_pylist(),
                                                  table.column("position").to_pylist())]

    def drop_vectors(self, kb_id: str) -> None:
        """Delete the vectors of this KB only (its partition)."""
        self._command(SQL_DROP_VECTORS, {"kb_id": kb_id})

    # ------------------------------------------------------------------ misc
    def health(self) -> bool:
        try:
            return int(self._query_table("SELECT 1 AS ok").column("ok")[0].as_py()) == 1
        except Exception:
            return False

    def close(self) -> None:  # noqa: B027 - optional hook
        pass

    def __enter__(self) -> PatternStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _batches(self, sql: str, params: Params, batch_rows: int, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
        if batch_rows < 1:
            raise ValueError("batch_rows must be positive")
        unknown = set(schema.names) - set(PATTERN_COLUMNS)
        if unknown:
            raise ValueError(f"not columns of a pattern row: {sorted(unknown)}")
        for batch in self._stream(f"SELECT {', '.join(schema.names)} {sql}", params, batch_rows):
            batch = _conform_batch(batch, schema)
            for start in range(0, batch.num_rows, batch_rows):
                yield batch.slice(start, batch_rows)

    # ------------------------------------------------------ engine primitives
    @abstractmethod
    def _command(self, sql: str, params: Params | None = None) -> None: ...

    @abstractmethod
    def _query_table(self, sql: str, params: Params | None = None) -> pa.Table: ...

    @abstractmethod
    def _stream(self, sql: str, params: Params, batch_rows: int) -> Iterator[pa.RecordBatch]: ...

    @abstractmethod
    def _insert_arrow(self, target: str, table: pa.Table) -> None:
        """Insert into ``kato.<target>``; ``target`` is a key of ``_INSERT_TARGETS``, never request data."""


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    if table.schema.equals(schema):
        return table
    return table.select(schema.names).cast(schema)


def _conform_batch(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    if batch.schema.equals(schema):
        return batch
    return pa.RecordBatch.from_arrays([batch.column(n).cast(schema.field(n).type) for n in schema.names],
                                      schema=schema)


# ===================================================================== chdb (embedded)
_ESCAPED = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\0": "\\0", "\b": "\\b", "\f": "\\f"}
_QUOTED = {**_ESCAPED, "'": "\\'"}


def _quoted(value: Any) -> str:
    if isinstance(value, str):
        return "'" + "".join(_QUOTED.get(c, c) for c in value) + "'"
    return _encode_param(value)


def _encode_param(value: Any) -> str:
    """A parameter value in ClickHouse's escaped text form (how ``param_<name>`` values are parsed).

    This is value encoding for server-side binding, not SQL: the result is parsed as data of the
    placeholder's declared type and can never change the statement.
    """
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    if isinstance(value, str):
        return "".join(_ESCAPED.get(c, c) for c in value)
    if isinstance(value, (list, tuple, np.ndarray)):
        return "[" + ",".join(_quoted(v) for v in value) + "]"
    raise TypeError(f"unsupported parameter type {type(value).__name__}")


class _ChdbHandle:
    """One chdb session per process (chdb's embedded server binds one data directory), refcounted."""

    lock = threading.Lock()
    # Every call into the engine, one thread at a time: chdb can block on its own session lock while holding the
    # GIL, and an insert from a Python object (``Python(arrow_rows)``) needs the GIL inside chdb: two threads
    # calling at once deadlocked (a flusher's insert and another flusher's query).
    calls = threading.RLock()
    session: Any = None
    path: str | None = None
    users = 0

    @classmethod
    def acquire(cls, path: str) -> Any:
        from chdb import session as chdb_session

        with cls.lock:
            if cls.session is not None and cls.path != path:
                raise StoreError(f"chdb already serves {cls.path!r} in this process; one data directory per "
                                 f"process (asked for {path!r})")
            if cls.session is None:
                cls.session = chdb_session.Session(path)
                cls.path = path
            cls.users += 1
            return cls.session

    @classmethod
    def release(cls) -> None:
        with cls.lock:
            cls.users -= 1
            if cls.users <= 0 and cls.session is not None:
                cls.session.close()
                cls.session, cls.path, cls.users = None, None, 0


_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$")


def _qualified(table: str) -> str:
    """An operator-given ``database.table``, checked and quoted (identifiers cannot be bound as parameters)."""
    if not _IDENTIFIER.match(table):
        raise ValueError(f"table must look like database.table, got {table!r}")
    database, name = table.split(".")
    return f"`{database}`.`{name}`"


class ChdbStore(PatternStore):
    def __init__(self, path: str) -> None:
        if not path.startswith("/") or "?" in path:
            raise ValueError("chdb path must be absolute and contain no '?'")
        self.path = path
        self._session = _ChdbHandle.acquire(path)
        self._closed = False

    @staticmethod
    def _params(params: Params | None) -> dict[str, str] | None:
        return {k: _encode_param(v) for k, v in params.items()} if params else None

    def _command(self, sql: str, params: Params | None = None) -> None:
        with _ChdbHandle.calls:
            self._session.query(sql, "CSV", params=self._params(params))

    def _query_table(self, sql: str, params: Params | None = None) -> pa.Table:
        with _ChdbHandle.calls:
            return self._session.query(sql, "ArrowTable", params=self._params(params))

    def _stream(self, sql: str, params: Params, batch_rows: int) -> Iterator[pa.RecordBatch]:
        # A chdb connection runs one streaming query at a time and any other query on it ends the stream,
        # so each stream gets its own connection to the (shared) embedded server.
        from chdb import session as chdb_session

        with _ChdbHandle.lock:
            conn = chdb_session.Session(self.path)
        try:
            with _ChdbHandle.calls:
                result = conn.send_query(sql, "Arrow", params=self._params(params))
                batches = result.record_batch(rows_per_batch=batch_rows)
            try:
                while True:
                    with _ChdbHandle.calls:
                        batch = next(batches, None)
                    if batch is None:
                        return
                    yield batch
            finally:
                with _ChdbHandle.calls:
                    result.close()
        finally:
            with _ChdbHandle.calls:
                conn.close()

    def _insert_arrow(self, target: str, table: pa.Table) -> None:
        cols = ", ".join(_INSERT_TARGETS[target])
        arrow_rows = table  # noqa: F841 - read by chdb's Python() table function from this frame
        with _ChdbHandle.calls:
            self._session.query(f"INSERT INTO {DATABASE}.{target} ({cols}) SELECT {cols} FROM Python(arrow_rows)")

    def release_memory(self) -> None:
        with contextlib.suppress(RuntimeError):  # chdb's errors: a build without jemalloc has nothing to purge
            self._command("SYSTEM JEMALLOC PURGE")

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            _ChdbHandle.release()


# ===================================================================== ClickHouse server
@dataclass(frozen=True)
class HttpDsn:
    host: str
    port: int
    secure: bool
    username: str
    password: str


def parse_http_dsn(dsn: str) -> HttpDsn:
    """``http(s)://[user[:password]@]host[:port][?user=&password=]`` (query values win)."""
    url = urlparse(dsn)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ValueError(f"not a ClickHouse http(s) DSN: {dsn!r}")
    query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
    secure = url.scheme == "https"
    return HttpDsn(
        host=url.hostname,
        port=url.port or (8443 if secure else 8123),
        secure=secure,
        username=query.get("user", unquote(url.username) if url.username else "default"),
        password=query.get("password", unquote(url.password) if url.password else ""),
    )


@contextmanager
def _unavailable_as(what: str) -> Iterator[None]:
    """Connection failures of clickhouse-connect become StoreUnavailable with a one-line reason."""
    from clickhouse_connect.driver.exceptions import OperationalError

    try:
        yield
    except OperationalError as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise StoreUnavailable(f"{what} is unreachable: {first}") from error


class HttpStore(PatternStore):
    """ClickHouse server via clickhouse-connect; parameters go as ``param_<name>`` (server-side binding)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    @classmethod
    def from_dsn(cls, dsn: str) -> HttpStore:
        import clickhouse_connect

        d = parse_http_dsn(dsn)
        with _unavailable_as(f"ClickHouse at {d.host}:{d.port}"):
            return cls(clickhouse_connect.get_client(host=d.host, port=d.port, username=d.username,
                                                     password=d.password, secure=d.secure))

    def _command(self, sql: str, params: Params | None = None) -> None:
        with _unavailable_as("ClickHouse"):
            self._client.command(sql, parameters=dict(params) if params else None)

    def _query_table(self, sql: str, params: Params | None = None) -> pa.Table:
        with _unavailable_as("ClickHouse"):
            return self._client.query_arrow(sql, parameters=dict(params) if params else None, use_strings=True)

    def _stream(self, sql: str, params: Params, batch_rows: int) -> Iterator[pa.RecordBatch]:
        with _unavailable_as("ClickHouse"), self._client.query_arrow_stream(
                sql, parameters=dict(params), use_strings=True, settings={"max_block_size": batch_rows}) as stream:
            for part in stream:
                yield from (part.to_batches() if isinstance(part, pa.Table) else [part])

    def _insert_arrow(self, target: str, table: pa.Table) -> None:
        if target not in _INSERT_TARGETS:
            raise KeyError(target)
        with _unavailable_as("ClickHouse"):
            self._client.insert_arrow(target, table, database=DATABASE)

    def close(self) -> None:
        self._client.close()


def open_pattern_store(dsn: str) -> PatternStore:
    """``chdb:///abs/path`` or ``http(s)://host:port[?user=&password=]``."""
    if dsn.startswith("chdb://"):
        path = unquote(urlparse(dsn).path)
        return ChdbStore(path)
    if dsn.startswith(("http://", "https://")):
        return HttpStore.from_dsn(dsn)
    raise ValueError(f"unknown store DSN scheme: {dsn!r}")
