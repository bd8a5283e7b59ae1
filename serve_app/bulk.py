"""Bulk ingest: learning many patterns of one node through the batch path (``POST /bulk/learn``).

Three bodies are accepted. A JSON document (``BulkLearnRequest``, at most ``max_events_per_request`` patterns)
is applied as one batch, at most once per ``batch_id``. A streamed body of newline-delimited JSON (one
``BulkPattern`` per line) or an Arrow IPC stream (columns ``events``, and optionally ``emotives`` and
``metadata`` as JSON text or native lists, ``frequency``) is read as it arrives and committed in batches of
``STREAM_BATCH`` rows; with a ``load_id`` each batch records the rows done in the same atomic step, so a stream
sent again with that id resumes where the last committed batch ended and no row is learned twice.

Either way the end state equals learning the patterns one by one in order, each ``frequency`` times; patterns
under two symbols are skipped (their name is ``""``), as a learn would skip them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import TypeAdapter, ValidationError

from cluster.stores.learn_commit import Guard, GuardFailed
from schema.api import MAX_FREQUENCY, BulkLearnRequest, BulkPattern
from schema.errors import Conflict, Unprocessable
from schema.learning import LearnedPattern, make_pattern
from schema.naming import PATTERN_PREFIX
from serve_app.access import PayloadLimits

STREAM_BATCH = 5000
MAX_STREAM_BATCH = 50_000
_ITEMS = TypeAdapter(list[BulkPattern])


@dataclass(frozen=True)
class PlainPattern:
    """A bulk pattern of events alone, valid as read (``_plain_patterns``): a ``BulkPattern`` without the cost
    of building one (no emotives, no metadata)."""

    events: list[list[str]]
    frequency: int = 1
    emotives: tuple[dict[str, float], ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)


Item = BulkPattern | PlainPattern


@dataclass
class BatchOutcome:
    learned: list[LearnedPattern] = field(default_factory=list)
    names: list[str] = field(default_factory=list)  # per input pattern: PTRN|<hash>, or "" when skipped
    skipped: int = 0

    @property
    def learns(self) -> int:
        return sum(p.repeats for p in self.learned)


def learned_patterns(items: Sequence[Item]) -> BatchOutcome:
    """The learns a batch of bulk patterns makes: one carrying its emotives and metadata, then the plain
    re-learns of its ``frequency`` as one aggregated learn."""
    out = BatchOutcome()
    for item in items:
        records = [{key: value} for key, values in item.metadata.items()
                   for value in (values if isinstance(values, list) else [values])]
        pattern = make_pattern(item.events, item.emotives, records)
        if pattern is None:
            out.skipped += 1
            out.names.append("")
            continue
        out.names.append(PATTERN_PREFIX + pattern.name)
        out.learned.append(pattern)
        if item.frequency > 1:
            out.learned.append(LearnedPattern(name=pattern.name, events=pattern.events, repeats=item.frequency - 1))
    return out


def check_limits(items: Sequence[Item], limits: PayloadLimits, first: int = 0) -> None:
    """Every event within the payload limits; the first one over them is a 422 naming its pattern."""
    most, longest = limits.max_symbols_per_event, limits.max_symbol_length
    for i, item in enumerate(items, first):
        for event in item.events:
            if len(event) > most or max(map(len, event), default=0) > longest:
                limits.check_symbols(event, f"patterns[{i}]")


# ------------------------------------------------------------------ streamed bodies
def ndjson_batches(body: BinaryIO, size: int = STREAM_BATCH) -> Iterator[list[BulkPattern]]:
    """Batches of validated patterns from newline-delimited JSON; a bad line is a 422 naming its number."""
    lines: list[bytes] = []
    number = 0
    for line in body:
        number += 1
        if line.strip():
            lines.append(line)
        if len(lines) >= size:
            yield _validated_lines(lines, number)
            lines = []
    if lines:
        yield _validated_lines(lines, number)


def _validated_lines(lines: list[bytes], last_line: int) -> list[BulkPattern]:
    try:
        return _ITEMS.validate_json(b"[" + b",".join(lines) + b"]")
    except ValidationError as error:
        first = error.errors()[0]
        loc = first["loc"]
        where = f"line {last_line - len(lines) + 1 + int(loc[0])}" if loc and isinstance(loc[0], int) \
            else f"one of lines {last_line - len(lines) + 1}-{last_line}"
        field = ".".join(str(part) for part in loc[1:])
        raise Unprocessable(f"{where}: {field + ': ' if field else ''}{first['msg']}") from error


def arrow_batches(body: BinaryIO, size: int = STREAM_BATCH) -> Iterator[Sequence[Item]]:
    """Batches of validated patterns from an Arrow IPC stream (``events``; optional ``emotives``, ``metadata``
    as JSON text or native values, ``frequency``)."""
    try:
        reader = pa.ipc.open_stream(body)
    except pa.ArrowInvalid as error:
        raise Unprocessable(f"not an Arrow IPC stream: {error}") from error
    if "events" not in reader.schema.names:
        raise Unprocessable(f"the Arrow stream needs an 'events' column; it has {reader.schema.names}")
    row = 0
    pending: list[Item] = []
    for batch in reader:
        plain, problem = _plain_patterns(batch), None
        if plain is None:
            validated, problem = _validated_rows(_arrow_rows(batch), row + len(pending))
        pending.extend(plain if plain is not None else validated)
        while len(pending) >= size:  # the whole batches before an invalid row are committed, as sent
            yield pending[:size]
            row += size
            pending = pending[size:]
        if problem is not None:
            raise problem
    if pending:
        yield pending


def _plain_patterns(batch: pa.RecordBatch) -> list[PlainPattern] | None:
    """The patterns of a batch of plain ``events`` (``list<list<string>>``, and an integer ``frequency``), valid
    by their types, checked on whole columns rather than row by row; None when the batch has anything else or
    any row that is not valid (the row-by-row validation then names it)."""
    names = set(batch.schema.names)
    kind = batch.schema.field("events").type
    if not (names <= {"events", "frequency"} and pa.types.is_list(kind) and pa.types.is_list(kind.value_type)
            and pa.types.is_string(kind.value_type.value_type)):
        return None
    events = batch.column("events")
    inner = events.flatten()
    if (events.null_count or inner.null_count or inner.flatten().null_count
            or pc.min(pc.list_value_length(events)).as_py() == 0 or pc.min(pc.list_value_length(inner)).as_py() == 0):
        return None
    frequencies: list[int] | None = None
    if "frequency" in names:
        column = batch.column("frequency")
        if not pa.types.is_integer(column.type) or column.null_count or (
                len(column) and not (pc.min(column).as_py() >= 1 and pc.max(column).as_py() <= MAX_FREQUENCY)):
            return None
        frequencies = column.to_pylist()
    return [PlainPattern(e, f) for e, f in zip(events.to_pylist(), frequencies or [1] * len(events))]


def _arrow_rows(batch: pa.RecordBatch) -> list[dict[str, Any]]:
    columns = {name: batch.column(name).to_pylist() for name in ("events", "emotives", "metadata", "frequency")
               if name in batch.schema.names}
    rows = [dict(zip(columns, values)) for values in zip(*columns.values())]
    for r in rows:
        for key in ("emotives", "metadata"):
            if isinstance(r.get(key), str):
                r[key] = json.loads(r[key])
        for key in [k for k, v in r.items() if v is None]:
            del r[key]
    return rows


def _validated_rows(rows: list[dict[str, Any]], first: int) -> tuple[list[BulkPattern], Unprocessable | None]:
    """The rows before the first invalid one (all of them when none is), validated, and the 422 naming it."""
    try:
        return _ITEMS.validate_python(rows), None
    except ValidationError as error:
        problem = error.errors()[0]  # errors come in row order: every row before this one is valid
        loc = problem["loc"]
        bad = int(loc[0]) if loc and isinstance(loc[0], int) else 0
        field = ".".join(str(part) for part in loc[1:])
        return (_ITEMS.validate_python(rows[:bad]),
                Unprocessable(f"row {first + bad}: {field + ': ' if field else ''}{problem['msg']}"))


# ---------------------------------------------------------------------- the loader
class BulkLoader:
    """What ``POST /bulk/learn`` does, over the cluster backend (``serve_app.cluster_backend.ClusterBackend``)."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend

    def learn_request(self, kb_id: str, request: BulkLearnRequest, limits: PayloadLimits) -> dict[str, Any]:
        if len(request.patterns) > limits.max_events_per_request:
            raise Unprocessable(f"{len(request.patterns)} patterns exceed the limit of "
                                f"{limits.max_events_per_request} per request")
        check_limits(request.patterns, limits)
        outcome = learned_patterns(request.patterns)
        applied = self.backend.redis_kb.keys(kb_id).applied_batches
        guard = Guard.once(applied, request.batch_id) if request.batch_id is not None else None
        try:
            new = self.backend.learn_batch(kb_id, outcome.learned, request.persistence, guard)
        except GuardFailed:
            return {"status": "already_applied", "node_id": kb_id, "patterns_received": len(request.patterns),
                    "learns_applied": 0, "new_patterns": 0, "skipped": 0, "pattern_names": []}
        return {"status": "learned", "node_id": kb_id, "patterns_received": len(request.patterns),
                "learns_applied": outcome.learns, "new_patterns": sum(new), "skipped": outcome.skipped,
                "pattern_names": outcome.names}

    def learn_stream(self, kb_id: str, batches: Iterator[Sequence[Item]], persistence: int,
                     load_id: str | None, limits: PayloadLimits, offset: int = 0) -> dict[str, Any]:
        """Commit a streamed body batch by batch. With ``load_id``, rows a previous stream of that load committed
        are skipped; ``offset`` is the load's row the body starts at (a client resuming sends only the rest)."""
        done = self.backend.redis_kb.load_progress(kb_id, load_id) if load_id else None
        resumed_from = done or 0
        if offset > resumed_from:
            raise Conflict(f"load {load_id!r} has {resumed_from} rows committed; a body starting at row {offset} "
                           "would leave a gap")
        rows = learns = created = skipped = commits = 0
        position = offset
        loads = self.backend.redis_kb.keys(kb_id).bulk_loads
        for items in batches:
            start, position = position, position + len(items)
            if position <= resumed_from:
                continue
            items = items[max(0, resumed_from - start):]
            check_limits(items, limits, max(start, resumed_from))
            outcome = learned_patterns(items)
            guard = Guard.progress(loads, load_id, done, position) if load_id else None
            try:
                new = self.backend.learn_batch(kb_id, outcome.learned, persistence, guard)
            except GuardFailed as error:
                raise Conflict(f"load {load_id!r} moved on meanwhile: another stream with this id is running") \
                    from error
            done = position
            commits += 1
            rows += len(items)
            learns += outcome.learns
            created += sum(new)
            skipped += outcome.skipped
        return {"status": "learned", "node_id": kb_id, "rows": rows, "learns_applied": learns,
                "new_patterns": created, "skipped": skipped, "resumed_from": resumed_from, "load_id": load_id,
                "batches": commits}

    def progress(self, kb_id: str, load_id: str) -> dict[str, Any]:
        return {"load_id": load_id, "node_id": kb_id,
                "rows_done": self.backend.redis_kb.load_progress(kb_id, load_id) or 0}
