"""Moving patterns in and out of a running cluster over its HTTP API: ``load``, ``export``, ``import-kato``.

Files are JSON lines or Parquet (chosen by extension) with one pattern per row: ``events`` and optionally
``emotives`` (list of dicts), ``metadata`` (key to value or list of values) and ``frequency``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import redis
import requests
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cluster.stores.kb_keys import glob_escape
from schema.api import ARROW_STREAM, NDJSON
from schema.naming import kb_id_for

LOAD_FIELDS = ("events", "emotives", "metadata", "frequency")


def _is_parquet(path: str | os.PathLike[str]) -> bool:
    return str(path).lower().endswith((".parquet", ".pq"))


def read_rows(path: str | os.PathLike[str], batch_rows: int = 10_000) -> Iterator[dict[str, Any]]:
    if _is_parquet(path):
        for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows):
            yield from batch.to_pylist()
        return
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as error:
                    raise ValueError(f"{path}:{number}: not a JSON object ({error.msg})") from error


def count_rows(path: str | os.PathLike[str]) -> int:
    if _is_parquet(path):
        return pq.ParquetFile(path).metadata.num_rows
    with open(path, "rb") as handle:
        return sum(1 for line in handle if line.strip())


def write_rows(path: str | os.PathLike[str], rows: Iterable[dict[str, Any]]) -> int:
    rows = list(rows) if _is_parquet(path) else rows
    if _is_parquet(path):
        table = pa.Table.from_pylist([{**r, "emotives": json.dumps(r.get("emotives", [])),
                                       "metadata": json.dumps(r.get("metadata", {}))} for r in rows])
        pq.write_table(table, path)
        return table.num_rows
    count = 0
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
            count += 1
    return count


def _normalise(row: dict[str, Any]) -> dict[str, Any]:
    """Keep the loadable fields; Parquet exports carry emotives/metadata as JSON text."""
    out = {k: row[k] for k in LOAD_FIELDS if k in row and row[k] is not None}
    for key in ("emotives", "metadata"):
        if isinstance(out.get(key), str):
            out[key] = json.loads(out[key])
    if "events" not in out:
        raise ValueError(f"row without events: {row!r}"[:200])
    return out


def _file_id(path: str, node: str) -> str:
    stat = os.stat(path)
    return hashlib.sha1(f"{os.path.abspath(path)}|{stat.st_size}|{stat.st_mtime_ns}|{node}".encode()).hexdigest()


@dataclass
class LoadReport:
    rows: int = 0
    skipped_rows: int = 0
    learns: int = 0
    new_patterns: int = 0
    seconds: float = 0.0
    resumed_from: int = 0
    batches: int = 0  # batches the server committed (each atomically, with the load's progress)
    attempts: int = 0

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def _ndjson_body(path: str, skip: int, sent: Callable[[int], None]) -> Iterator[bytes]:
    """The file's rows from row ``skip`` on, normalised, as newline-delimited JSON in chunks of about 1 MiB."""
    chunk: list[bytes] = []
    size = 0
    for number, row in enumerate(read_rows(path)):
        if number < skip:
            continue
        line = json.dumps(_normalise(row)).encode() + b"\n"
        chunk.append(line)
        size += len(line)
        if size >= 1 << 20:
            sent(len(chunk))
            yield b"".join(chunk)
            chunk, size = [], 0
    if chunk:
        sent(len(chunk))
        yield b"".join(chunk)


class IpcChunks(io.RawIOBase):
    """A sink the Arrow IPC writer writes into; ``take`` hands over what was written since the last call."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        out, self.parts = b"".join(self.parts), []
        return out

    def writer(self, schema: pa.Schema) -> pa.ipc.RecordBatchStreamWriter:
        return pa.ipc.new_stream(pa.PythonFile(self, mode="w"), schema)


def _arrow_body(path: str, skip: int, sent: Callable[[int], None]) -> Iterator[bytes]:
    """A Parquet file's rows from row ``skip`` on as an Arrow IPC stream (the server reads it as it arrives)."""
    source = pq.ParquetFile(path)
    columns = [name for name in LOAD_FIELDS if name in source.schema_arrow.names]
    if "events" not in columns:
        raise ValueError(f"{path}: no events column")
    sink = IpcChunks()
    writer = sink.writer(source.schema_arrow.select(columns))
    position = 0
    for batch in source.iter_batches(batch_size=10_000, columns=columns):
        start, position = position, position + batch.num_rows
        if position <= skip:
            continue
        batch = batch.slice(max(0, skip - start))
        writer.write_batch(batch)
        sent(batch.num_rows)
        yield sink.take()
    writer.close()
    yield sink.take()


def _progress(http: requests.Session, url: str, node: str, load_id: str) -> int:
    response = http.get(f"{url}/bulk/loads/{load_id}", params={"node_id": node}, timeout=60)
    response.raise_for_status()
    return int(response.json()["rows_done"])


def load(url: str, path: str, node: str, batch_rows: int = 5000, show_progress: bool = True,
         attempts: int = 5) -> LoadReport:
    """Bulk-learn a file into ``node`` as one streamed body (``POST /bulk/learn``: NDJSON for JSON lines, an Arrow
    IPC stream for Parquet), committed by the server in batches of ``batch_rows``. Resumable: the server records,
    in each batch's atomic commit, how many rows of this load (identified by the file and the node) are done; a
    load that is interrupted or run again sends only the rest, so no row is learned twice."""
    load_id = _file_id(path, node)
    http = requests.Session()
    total = count_rows(path)
    report = LoadReport()
    start = time.perf_counter()
    with Progress(TextColumn("loading {task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[rate]}"), disable=not show_progress) as progress:
        task = progress.add_task(os.path.basename(path), total=total, rate="")
        for attempt in range(1, attempts + 1):
            report.attempts = attempt
            done = _progress(http, url, node, load_id)
            if attempt == 1:
                report.resumed_from = done
            progress.update(task, completed=done)

            def sent(rows: int) -> None:
                progress.advance(task, rows)
                elapsed = time.perf_counter() - start
                progress.update(task, rate=f"{progress.tasks[task].completed / max(elapsed, 1e-9):,.0f} rows/s")

            body, kind = ((_arrow_body(path, done, sent), ARROW_STREAM) if _is_parquet(path)
                          else (_ndjson_body(path, done, sent), NDJSON))
            try:
                response = http.post(f"{url}/bulk/learn", data=body, timeout=3600, headers={"content-type": kind},
                                     params={"node_id": node, "load_id": load_id, "offset": str(done),
                                             "batch": str(batch_rows)})
            except requests.ConnectionError:
                if attempt == attempts:
                    raise
                time.sleep(min(5.0, 0.5 * attempt))
                continue
            if response.status_code in (502, 503, 504) and attempt < attempts:
                time.sleep(float(response.headers.get("Retry-After", 1)))
                continue
            if response.status_code != 200:
                raise RuntimeError(f"the load was refused ({response.status_code}): {response.text[:500]}")
            _add(report, response.json())
            break
    report.seconds = time.perf_counter() - start
    return report


def _add(report: LoadReport, body: dict[str, Any]) -> None:
    report.rows += body["rows"]
    report.learns += body["learns_applied"]
    report.new_patterns += body["new_patterns"]
    report.skipped_rows += body["skipped"]
    report.batches += body["batches"]


def export(url: str, node: str, path: str) -> int:
    """Write every pattern of ``node`` (the inverse of ``load``)."""
    response = requests.get(f"{url}/bulk/export", params={"node_id": node}, stream=True, timeout=600)
    response.raise_for_status()
    rows = (json.loads(line) for line in response.iter_lines(decode_unicode=True) if line)
    return write_rows(path, rows)


# ------------------------------------------------------------------- import-kato
def read_kb_keys(client: redis.Redis, kb_id: str) -> dict[str, dict[str, Any]]:
    """Every ``{kb_id}:*`` key of a KATO Redis as ``{key: {"type", "value"}}`` (SCAN, never KEYS)."""
    keys = sorted(client.scan_iter(match=glob_escape(kb_id) + ":*", count=1000))
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.type(key)
    kinds = pipe.execute()
    pipe = client.pipeline(transaction=False)
    for key, kind in zip(keys, kinds):
        if kind == "string":
            pipe.get(key)
        elif kind == "hash":
            pipe.hgetall(key)
        elif kind == "set":
            pipe.smembers(key)
        elif kind == "list":
            pipe.lrange(key, 0, -1)
        else:
            pipe.type(key)  # a placeholder reply; other types are not part of KATO's layout
    values = pipe.execute()
    out = {}
    for key, kind, value in zip(keys, kinds, values):
        if kind == "set":
            value = sorted(value)
        if kind in ("string", "hash", "set", "list"):
            out[key] = {"type": kind, "value": value}
    return out


def _pattern_checksum(rows: Iterable[tuple[str, Any, int, Any, Any]]) -> str:
    digest = hashlib.sha1()
    for row in sorted(rows, key=lambda r: r[0]):
        digest.update(json.dumps(row, sort_keys=True).encode())
    return digest.hexdigest()


@dataclass
class ImportReport:
    kb_id: str
    patterns: int
    keys: int
    verified: bool
    source_checksum: str
    target_checksum: str


def import_kato(url: str, store, client: redis.Redis, nodes: list[str] | None = None,
                table: str = "kato.patterns_data", service_name: str = "kato", chunk: int = 2000) -> list[ImportReport]:
    """Migrate KATO KBs (all, or those of ``nodes``) into the cluster at ``url`` and verify them."""
    kb_ids = [kb_id_for(n, service_name) for n in nodes] if nodes else store.kato_kb_ids(table)
    http = requests.Session()
    reports = []
    for kb_id in kb_ids:
        rows = store.kato_patterns(kb_id, table)
        names = [str(n) for n in rows.column("name").to_pylist()]
        events = rows.column("pattern_data").to_pylist()
        keys = read_kb_keys(client, kb_id)
        for lo in range(0, max(len(names), 1), chunk):
            part = [{"name": n, "events": e} for n, e in zip(names[lo:lo + chunk], events[lo:lo + chunk])]
            key_items = list(keys.items()) if lo == 0 else []
            for k_lo in range(0, max(len(key_items), 1), 5000):
                body = {"kb_id": kb_id, "patterns": part if k_lo == 0 else [],
                        "keys": dict(key_items[k_lo:k_lo + 5000])}
                response = http.post(f"{url}/bulk/import-kato", json=body, timeout=600)
                if response.status_code != 200:
                    raise RuntimeError(f"import of {kb_id} refused ({response.status_code}): {response.text[:500]}")
        source = _pattern_checksum(
            (n, e, int(keys.get(f"{kb_id}:frequency:{n}", {}).get("value") or 1),
             json.loads(keys.get(f"{kb_id}:emotives:{n}", {}).get("value") or "[]"),
             json.loads(keys.get(f"{kb_id}:metadata:{n}", {}).get("value") or "{}"))
            for n, e in zip(names, events))
        exported = [json.loads(line) for line in
                    http.get(f"{url}/bulk/export", params={"kb_id": kb_id}, timeout=600).text.splitlines() if line]
        target = _pattern_checksum((r["name"].removeprefix("PTRN|"), r["events"], r["frequency"], r["emotives"],
                                    r["metadata"]) for r in exported)
        reports.append(ImportReport(kb_id, len(names), len(keys), source == target and len(exported) == len(names),
                                    source, target))
    return reports
