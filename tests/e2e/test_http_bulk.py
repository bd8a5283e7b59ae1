"""The bulk learn endpoint: same end state as learning one by one (issue: run it like a product)."""

from __future__ import annotations

import json

import pytest
import redis
import requests

from schema.naming import kb_id_for
from tests.e2e.kato_client import KatoClient

pytestmark = pytest.mark.integration


def kb_dump(url: str, kb: str) -> dict:
    r = redis.Redis.from_url(url, decode_responses=True)
    dump = {}
    for key in r.scan_iter(match=f"{kb}:*"):
        kind = r.type(key)
        dump[key.split(":", 1)[1]] = (r.get(key) if kind == "string" else r.hgetall(key) if kind == "hash"
                                      else sorted(r.smembers(key)))
    return dump


def test_bulk_equals_one_by_one(base_url, embedded_redis):
    patterns = [
        {"events": [["a", "b"], ["c"]], "emotives": [{"joy": 1.0}, {"joy": 0.5}], "metadata": {"src": "x"}},
        {"events": [["c"], ["d"]], "frequency": 3},
        {"events": [["a", "b"], ["c"]], "emotives": [{"joy": -1.0}], "metadata": {"src": 7}},
        {"events": [["solo"]]},
    ]
    bulk_node = "bulk_node_1"
    body = requests.post(f"{base_url}/bulk/learn", json={"node_id": bulk_node, "patterns": patterns}).json()
    assert body["patterns_received"] == 4 and body["learns_applied"] == 5 and body["skipped"] == 1
    assert body["new_patterns"] == 2 and body["pattern_names"][3] == ""

    one = KatoClient(base_url, node_id="bulk_node_2")
    for p in patterns:
        for repeat in range(p.get("frequency", 1)):
            for i, event in enumerate(p["events"]):
                emotives = p.get("emotives", []) if repeat == 0 else []
                one.observe(event, emotives=emotives[i] if i < len(emotives) else None,
                            metadata=p.get("metadata") if i == 0 and repeat == 0 else None)
            assert one.learn() in body["pattern_names"]
    assert kb_dump(embedded_redis.url, kb_id_for(bulk_node)) == kb_dump(embedded_redis.url, kb_id_for("bulk_node_2"))
    viewer = KatoClient(base_url, node_id=bulk_node)
    viewer.observe(["c"])
    viewer.observe(["d"])
    assert viewer.predictions()[0]["frequency"] == 3


def test_bulk_validation(base_url):
    url = f"{base_url}/bulk/learn"
    assert requests.post(url, json={"node_id": "n", "patterns": [{"events": "x"}]}).status_code == 422
    zero = {"node_id": "n", "patterns": [{"events": [["a", "b"]], "frequency": 0}]}
    assert requests.post(url, json=zero).status_code == 422
    for events in ([], [[]], [["a"], []]):
        body = {"node_id": "n", "patterns": [{"events": events}]}
        assert requests.post(url, json=body).status_code == 422, events
    bad_row = {"kb_id": "n_kato", "patterns": [{"name": "a" * 40, "events": [[]]}]}
    assert requests.post(f"{base_url}/bulk/import-kato", json=bad_row).status_code == 422
    assert requests.post(f"{base_url}/bulk/learn", json={"patterns": []}).status_code == 422
    schema = requests.get(f"{base_url}/openapi.json").json()
    assert "/bulk/learn" in schema["paths"]


def test_a_body_that_is_not_utf8_is_a_422_that_echoes_it(base_url):
    response = requests.post(f"{base_url}/bulk/learn", data=b"EVb e\xb5", headers={"content-type": "application/json"})
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["type"] == "json_invalid" and error["input"] == "EVb e\ufffd"


def test_huge_frequencies_are_aggregated(base_url):
    body = {"node_id": "bulk_huge", "patterns": [{"events": [["h1"], ["h2"]], "frequency": 1_000_000}] * 3}
    result = requests.post(f"{base_url}/bulk/learn", json=body, timeout=60).json()
    assert result["learns_applied"] == 3_000_000 and result["new_patterns"] == 1
    viewer = KatoClient(base_url, node_id="bulk_huge")
    viewer.observe(["h1"])
    viewer.observe(["h2"])
    assert viewer.predictions()[0]["frequency"] == 3_000_000


def test_batch_ids_make_loads_idempotent(base_url):
    body = {"node_id": "bulk_idem", "batch_id": "file-0-100", "patterns": [{"events": [["x"], ["y"]]}]}
    assert requests.post(f"{base_url}/bulk/learn", json=body).json()["status"] == "learned"
    again = requests.post(f"{base_url}/bulk/learn", json=body).json()
    assert again["status"] == "already_applied" and again["learns_applied"] == 0
    viewer = KatoClient(base_url, node_id="bulk_idem")
    viewer.observe(["x"])
    viewer.observe(["y"])
    assert viewer.predictions()[0]["frequency"] == 1


def test_export_is_the_inverse_of_load(base_url):
    rows = [{"events": [["b", "c"], ["d"]], "emotives": [{"joy": 0.5}], "metadata": {"k": ["v"]}, "frequency": 2},
            {"events": [["q"], ["r"], ["s"]], "emotives": [], "metadata": {}, "frequency": 1}]
    requests.post(f"{base_url}/bulk/learn", json={"node_id": "exp_src", "patterns": rows}).raise_for_status()
    exported = [json.loads(line) for line in
                requests.get(f"{base_url}/bulk/export", params={"node_id": "exp_src"}).text.splitlines()]
    def shape(items):
        return sorted((r["events"], r["frequency"]) for r in items)

    assert shape(exported) == shape(rows)
    first = next(r for r in exported if r["events"] == rows[0]["events"])
    assert first["emotives"] == [{"joy": 0.5}] and first["metadata"] == {"k": ["v"]}
    reload = [{k: r[k] for k in ("events", "emotives", "metadata", "frequency")} for r in exported]
    requests.post(f"{base_url}/bulk/learn", json={"node_id": "exp_dst", "patterns": reload}).raise_for_status()
    again = [json.loads(line) for line in
             requests.get(f"{base_url}/bulk/export", params={"node_id": "exp_dst"}).text.splitlines()]
    assert again == exported


def _lines(rows: list[dict]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in rows)


def _chunked(data: bytes, size: int = 7):
    """The body as many small chunks (chunked transfer encoding: no Content-Length, read as it arrives)."""
    for start in range(0, len(data), size):
        yield data[start:start + size]


STREAM_ROWS = [{"events": [["s1", "s2"], ["s3"]], "emotives": [{"joy": 0.25}], "metadata": {"k": "v"}},
               {"events": [["s3"], ["s4"]], "frequency": 4},
               {"events": [["s1", "s2"], ["s3"]], "emotives": [{"joy": 1.5}]},
               {"events": [["lonely"]]}]


def test_a_streamed_ndjson_body_equals_the_json_batch(base_url, embedded_redis):
    requests.post(f"{base_url}/bulk/learn", json={"node_id": "stream_json", "patterns": STREAM_ROWS}
                  ).raise_for_status()
    streamed = requests.post(f"{base_url}/bulk/learn", params={"node_id": "stream_nd"},
                             data=_chunked(_lines(STREAM_ROWS)), headers={"content-type": "application/x-ndjson"})
    assert streamed.status_code == 200, streamed.text
    body = streamed.json()
    assert (body["rows"], body["learns_applied"], body["new_patterns"], body["skipped"]) == (4, 6, 2, 1)
    assert kb_dump(embedded_redis.url, kb_id_for("stream_nd")) == kb_dump(embedded_redis.url, kb_id_for("stream_json"))


def test_a_streamed_arrow_body_equals_the_json_batch(base_url, embedded_redis):
    import pyarrow as pa

    table = pa.table({"events": [r["events"] for r in STREAM_ROWS],
                      "emotives": [json.dumps(r.get("emotives", [])) for r in STREAM_ROWS],
                      "metadata": [json.dumps(r.get("metadata", {})) for r in STREAM_ROWS],
                      "frequency": [r.get("frequency", 1) for r in STREAM_ROWS]})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        for batch in table.to_batches(max_chunksize=1):
            writer.write_batch(batch)
    streamed = requests.post(f"{base_url}/bulk/learn", params={"node_id": "stream_arrow"},
                             data=_chunked(sink.getvalue().to_pybytes(), 64),
                             headers={"content-type": "application/vnd.apache.arrow.stream"})
    assert streamed.status_code == 200, streamed.text
    assert streamed.json()["new_patterns"] == 2
    requests.post(f"{base_url}/bulk/learn", json={"node_id": "stream_json2", "patterns": STREAM_ROWS}
                  ).raise_for_status()
    assert kb_dump(embedded_redis.url, kb_id_for("stream_arrow")) == kb_dump(embedded_redis.url,
                                                                             kb_id_for("stream_json2"))


def test_a_load_sent_again_resumes_and_learns_no_row_twice(base_url):
    rows = [{"events": [[f"r{i}"], [f"r{i + 1}"]]} for i in range(12_000)]  # three batches of the stream
    url, params = f"{base_url}/bulk/learn", {"node_id": "stream_resume", "load_id": "file-1"}
    headers = {"content-type": "application/x-ndjson"}
    bad = _lines(rows[:7000]) + b'{"events": "not a list"}\n' + _lines(rows[7000:])
    failed = requests.post(url, params=params, data=_chunked(bad, 65536), headers=headers)
    assert failed.status_code == 422 and "line 7001" in failed.json()["detail"]
    again = requests.post(url, params=params, data=_chunked(_lines(rows), 65536), headers=headers)
    assert again.status_code == 200, again.text
    body = again.json()
    assert body["resumed_from"] == 5000 and body["rows"] == 7000 and body["new_patterns"] == 7000
    viewer = KatoClient(base_url, node_id="stream_resume")
    viewer.observe(["r10"])
    viewer.observe(["r11"])
    assert viewer.predictions()[0]["frequency"] == 1
    done = requests.post(url, params=params, data=_chunked(_lines(rows), 65536), headers=headers).json()
    assert (done["resumed_from"], done["rows"], done["learns_applied"]) == (12_000, 0, 0)


def test_a_streamed_load_needs_a_node_and_is_not_held_to_the_body_limit(base_url):
    headers = {"content-type": "application/x-ndjson"}
    missing = requests.post(f"{base_url}/bulk/learn", data=_lines(STREAM_ROWS), headers=headers)
    assert missing.status_code == 422 and "node_id" in missing.json()["detail"]
