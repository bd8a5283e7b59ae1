"""Streamed bulk bodies: plain Arrow ``events`` columns are checked whole, and give what row-by-row validation
gives; any invalid row still gets the 422 naming it, after the whole batches before it."""

from __future__ import annotations

import io
import json

import pyarrow as pa
import pytest

from schema.errors import Unprocessable
from serve_app.bulk import _plain_patterns, arrow_batches, learned_patterns, ndjson_batches

ROWS = [[["a", "b"], ["c"]], [["c"], ["d"]], [["e"], ["f", "g"]], [["h"], ["i"]], [["j"], ["k"]]]


def _stream(table: pa.Table, chunk: int) -> io.BytesIO:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=chunk)
    return io.BytesIO(sink.getvalue().to_pybytes())


def _ndjson(rows: list[dict]) -> io.BytesIO:
    return io.BytesIO(b"".join(json.dumps(r).encode() + b"\n" for r in rows))


@pytest.mark.parametrize("chunk", [1, 2, 5])
def test_plain_arrow_columns_give_the_validated_patterns(chunk):
    frequencies = [1, 3, 1, 2, 1]
    table = pa.table({"events": ROWS, "frequency": pa.array(frequencies, pa.int32())})
    assert _plain_patterns(table.to_batches()[0]) is not None  # the whole-column path
    got = [p for batch in arrow_batches(_stream(table, chunk), size=2) for p in batch]
    expected = [p for batch in ndjson_batches(_ndjson([{"events": e, "frequency": f}
                                                       for e, f in zip(ROWS, frequencies)]), size=2) for p in batch]
    assert [(p.events, list(p.emotives), dict(p.metadata), p.frequency) for p in got] == \
        [(p.events, p.emotives, p.metadata, p.frequency) for p in expected]
    assert learned_patterns(got).learned == learned_patterns(expected).learned
    assert [len(batch) for batch in arrow_batches(_stream(table, chunk), size=2)] == [2, 2, 1]


@pytest.mark.parametrize(("column", "message"), [
    (pa.array([*ROWS[:3], [["x"], []], ROWS[4]]), "row 3: events.1: List should have at least 1 item"),
    (pa.array([*ROWS[:3], [], ROWS[4]]), "row 3: events: List should have at least 1 item"),
    (pa.array([*ROWS[:3], [["x"], None], ROWS[4]]), "row 3: events.1: Input should be a valid list"),
])
def test_an_invalid_plain_row_is_named_after_the_whole_batches_before_it(column, message):
    assert _plain_patterns(pa.table({"events": column}).to_batches()[0]) is None
    with pytest.raises(Unprocessable, match=message):
        list(arrow_batches(_stream(pa.table({"events": column}), 5), size=2))
    committed = []
    with pytest.raises(Unprocessable):
        for batch in arrow_batches(_stream(pa.table({"events": column}), 5), size=2):
            committed.append(len(batch))
    assert committed == [2]  # rows 0-1; the batch of rows 2-3 holds the invalid row


def test_a_frequency_out_of_range_is_named():
    table = pa.table({"events": ROWS, "frequency": [1, 1, 0, 1, 1]})
    with pytest.raises(Unprocessable, match="row 2: frequency"):
        list(arrow_batches(_stream(table, 5), size=10))
