"""Payload limits (413/422 with a message), hostile input stored verbatim, API keys (issue: reliability and
security)."""

from __future__ import annotations

import json

import pytest
import requests

from tests.e2e.kato_client import KatoClient

pytestmark = pytest.mark.integration


@pytest.fixture
def limits(holder):
    saved = (holder.max_body_bytes, holder.service.limits)
    from serve_app.access import PayloadLimits

    holder.max_body_bytes = 20_000
    holder.service.limits = PayloadLimits(max_events_per_request=5, max_symbols_per_event=4, max_symbol_length=50)
    yield holder
    holder.max_body_bytes, holder.service.limits = saved


def test_body_size_limit_with_and_without_content_length(base_url, limits):
    k = KatoClient(base_url)
    big = {"strings": ["x" * 30] * 2, "metadata": {"blob": "y" * 30_000}}
    r = k.http.post(k.url("/observe"), json=big)
    assert r.status_code == 413 and "exceeds 20000 bytes" in r.json()["detail"]
    chunks = (part for part in [json.dumps(big).encode()[i:i + 1000] for i in range(0, 31_000, 1000)])
    r = k.http.post(k.url("/observe"), data=chunks, headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    small = (part for part in [b'{"strings": ', b'["a", "b"]}'])
    r = k.http.post(k.url("/observe"), data=small, headers={"Content-Type": "application/json"})
    assert r.status_code == 200 and k.stm() == [["a", "b"]]


def test_symbol_and_event_limits_are_422_with_a_message(base_url, limits):
    k = KatoClient(base_url)
    r = k.http.post(k.url("/observe"), json={"strings": ["a", "b", "c", "d", "e"]})
    assert r.status_code == 422 and "5 symbols in one event exceed the limit of 4" in r.json()["detail"]
    r = k.http.post(k.url("/observe"), json={"strings": ["z" * 51]})
    assert r.status_code == 422 and "51 characters" in r.json()["detail"]
    r = k.http.post(k.url("/observe-sequence"), json={"observations": [{"strings": ["a"]}] * 6})
    assert r.status_code == 422 and "6 observations exceed the limit of 5" in r.json()["detail"]
    r = requests.post(f"{base_url}/bulk/learn", json={"node_id": "n", "patterns": [{"events": [["a"] * 9]}]})
    assert r.status_code == 422
    assert k.stm() == []


HOSTILE = ["'; DROP TABLE kato.patterns_data; --", "../../etc/passwd", "a\x00b", "\n\t\r", "*?[]\\", "🦜 ünï",
           "${jndi:ldap://x}", "PTRN|x", "VCTR|y"]


def test_hostile_symbols_node_ids_and_metadata_are_stored_verbatim(base_url):
    node = "node'; DROP TABLE x; --/../*[]"
    k = KatoClient(base_url, node_id=node)
    k.observe(HOSTILE[:4], metadata={"q": "'; SELECT 1; --", "n": 1e308, "big": 10**30})
    k.observe(HOSTILE[4:])
    name = k.learn()
    assert name.startswith("PTRN|")
    pattern = requests.get(f"{base_url}/pattern/{name}", params={"node_id": node}).json()["pattern"]["pattern"]
    assert pattern["pattern_data"] == [sorted(HOSTILE[:4]), sorted(HOSTILE[4:])]
    assert pattern["metadata"] == {"q": ["'; SELECT 1; --"], "n": ["1e+308"], "big": [str(10**30)]}
    other = KatoClient(base_url)
    other.observe(sorted(HOSTILE[:4]))
    other.observe(sorted(HOSTILE[4:]))
    assert other.predictions() == []  # another node never sees it
    k.observe(sorted(HOSTILE[:4]))
    k.observe(sorted(HOSTILE[4:]))
    assert k.predictions()[0]["name"] == name[5:]


def test_non_finite_numbers_are_refused(base_url):
    k = KatoClient(base_url)
    for body in ('{"strings": ["a"], "emotives": {"joy": NaN}}', '{"strings": ["a"], "emotives": {"joy": Infinity}}',
                 '{"vectors": [[NaN, 1.0]]}'):
        r = k.http.post(k.url("/observe"), data=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 422, body
    assert k.stm() == []


def test_api_keys_restrict_nodes(base_url, holder):
    from serve_app.access import parse_api_keys

    saved = holder.api_keys
    holder.api_keys = parse_api_keys("alpha-key=alpha_node;admin-key=*")
    try:
        assert requests.get(f"{base_url}/health").status_code == 200
        r = requests.post(f"{base_url}/sessions", json={"node_id": "alpha_node"})
        assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer"
        wrong = {"Authorization": "Bearer nope"}
        assert requests.post(f"{base_url}/sessions", json={"node_id": "alpha_node"}, headers=wrong).status_code == 401
        alpha = {"Authorization": "Bearer alpha-key"}
        ok = requests.post(f"{base_url}/sessions", json={"node_id": "alpha_node"}, headers=alpha)
        assert ok.status_code == 200
        sid = ok.json()["session_id"]
        assert requests.post(f"{base_url}/sessions/{sid}/observe", json={"strings": ["a"]},
                             headers=alpha).status_code == 200
        assert requests.post(f"{base_url}/sessions", json={"node_id": "beta_node"}, headers=alpha).status_code == 403
        admin = {"Authorization": "Bearer admin-key"}
        beta = requests.post(f"{base_url}/sessions", json={"node_id": "beta_node"}, headers=admin).json()
        r = requests.get(f"{base_url}/sessions/{beta['session_id']}/stm", headers=alpha)
        assert r.status_code == 403 and "beta_node" in r.json()["detail"]
        assert requests.get(f"{base_url}/symbols/affinity", params={"node_id": "beta_node"},
                            headers=alpha).status_code == 403
        assert requests.get(f"{base_url}/bulk/export", params={"kb_id": "beta_node_kato"},
                            headers=alpha).status_code == 403
        for method, path, body in (("post", "/admin/reshard", {"shards": 3}), ("get", "/admin/reshard", None),
                                   ("post", "/admin/reshard/abort", None)):
            assert requests.request(method, f"{base_url}{path}", json=body).status_code == 401, path
            refused = requests.request(method, f"{base_url}{path}", json=body, headers=alpha)
            assert refused.status_code == 403 and "all nodes" in refused.json()["detail"], path
        status = requests.get(f"{base_url}/admin/reshard", headers=admin)
        assert status.status_code == 200 and len(status.json()["map"]["ranges"]) == 2
        assert requests.post(f"{base_url}/admin/reshard/abort", headers=admin).status_code == 409  # none to abort
        assert requests.post(f"{base_url}/admin/reshard", json={"shards": 0}, headers=admin).status_code == 422
    finally:
        holder.api_keys = saved
    assert requests.post(f"{base_url}/sessions", json={"node_id": "alpha_node"}).status_code == 200
