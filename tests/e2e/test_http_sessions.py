"""Session endpoints over real HTTP (spec §4.2, §4.4; checklist items 1–13, 58–64, 68)."""

from __future__ import annotations

import time

import pytest
import requests

from tests.e2e.kato_client import KatoClient, assert_concurrent_observes_are_exact

pytestmark = pytest.mark.integration


def test_create_echoes_fields_and_effective_config(base_url):
    r = requests.post(f"{base_url}/sessions", json={"node_id": "echo_node", "ttl_seconds": 7200,
                                                    "metadata": {"owner": "me"}, "config": {"max_predictions": 7}})
    assert r.status_code == 200
    body = r.json()
    assert body["session_id"].startswith("session-") and body["node_id"] == "echo_node"
    assert body["ttl_seconds"] == 7200 and body["metadata"] == {"owner": "me"}
    assert body["session_config"]["max_predictions"] == 7 and body["session_config"]["recall_threshold"] == 0.1
    assert {"created_at", "expires_at"} <= set(body)
    assert r.headers["X-Trace-ID"]


@pytest.mark.parametrize("body", [{}, {"node_id": None}, {"node_id": "n", "metadata": "x"},
                                  {"node_id": "n", "ttl_seconds": "soon"}, {"node_id": "n", "ttl_seconds": -5}])
def test_create_rejects_bad_bodies_with_422(base_url, body):
    assert requests.post(f"{base_url}/sessions", json=body).status_code == 422


def test_invalid_creation_config_is_dropped_silently(base_url):
    body = requests.post(f"{base_url}/sessions", json={"node_id": "n", "config": {"recall_threshold": 7}}).json()
    assert body["session_config"]["recall_threshold"] == 0.1


def test_trace_id_is_echoed(base_url):
    r = requests.get(f"{base_url}/sessions/count", headers={"X-Trace-ID": "abc123"})
    assert r.headers["X-Trace-ID"] == "abc123"


def test_observe_sorts_and_skips_empty_events(base_url):
    k = KatoClient(base_url)
    result = k.observe(["hello"])
    assert result["status"] == "okay" and result["auto_learned_pattern"] is None
    assert result["unique_id"].startswith("obs-") and result["session_id"] == k.session_id
    for event in (["z", "y", "x"], [], ["c", "b", "a"], ["Zoo", "Apple", "apple"], ["", "b"]):
        k.observe(event)
    r = k.http.get(k.url("/stm"))
    assert r.headers["X-Session-ID"] == k.session_id
    assert r.json() == {"stm": [["hello"], ["x", "y", "z"], ["a", "b", "c"], ["Apple", "Zoo", "apple"], ["", "b"]],
                        "session_id": k.session_id, "length": 5}


@pytest.mark.parametrize("body", [{"strings": [None]}, {"strings": [1]}, {"vectors": "x"}, {"emotives": "x"},
                                  {"emotives": {"joy": "very"}}, {"metadata": []}])
def test_invalid_observations_are_422(base_url, body):
    k = KatoClient(base_url)
    r = k.http.post(k.url("/observe"), json=body)
    assert r.status_code == 422
    assert isinstance(r.json()["detail"], list) and r.json()["detail"][0]["loc"]


def test_malformed_json_is_422_and_empty_bodies_are_fine(base_url):
    k = KatoClient(base_url)
    r = k.http.post(k.url("/observe"), data="{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    for body in ({}, {"strings": []}, {"invalid_key": 1}):
        assert k.http.post(k.url("/observe"), json=body).status_code == 200
    assert k.stm() == []


def test_vector_observations(base_url):
    k = KatoClient(base_url)
    k.observe(vectors=[[1.0, 2.0, 3.0]])
    k.observe(strings=["b", "a"], vectors=[[0.1, 0.2, 0.3]])
    stm = k.stm()
    assert stm[0] == ["VCTR|fe5de4472f7e4d5c9cdd19cadebfa06fe3da8e43"]
    assert stm[1] == ["VCTR|e09ff768f2b2a0f5d5e78932dc977709e8c35f57", "a", "b"]
    r = k.http.post(k.url("/observe"), json={"vectors": [[1, 2], [1, 2, 3]]})
    assert r.status_code == 400 and "same length" in r.json()["detail"]


def test_stm_cap_keeps_newest(base_url):
    k = KatoClient(base_url)
    k.observe_sequence([{"strings": [f"s{i}"]} for i in range(1100)])
    stm = k.stm()
    assert len(stm) == 1000 and stm[-1] == ["s1099"] and stm[0] == ["s100"]


def test_clear_stm_resets_short_term_state(base_url):
    k = KatoClient(base_url, config={"max_predictions": 3})
    k.observe(["a"], emotives={"joy": 1})
    k.observe(["b"])
    assert k.http.post(k.url("/clear-stm")).json() == {"status": "cleared", "session_id": k.session_id}
    assert k.stm() == []
    assert k.http.get(k.url("/percept-data")).json()["percept_data"] == {}
    assert k.http.get(k.url("/cognition-data")).json()["cognition_data"]["predictions"] == []
    assert k.http.get(k.url("/config")).json()["config"]["max_predictions"] == 3


def test_learn_rules_over_http(base_url):
    k = KatoClient(base_url)
    assert k.learn_sequence([["hello"], ["world"]]) == "PTRN|7d0678ba6305341ce0d25133ab086208656a562f"
    assert k.stm() == []
    r = k.http.post(k.url("/learn"))
    assert r.status_code == 400 and r.json() == {"detail": "Cannot learn from empty STM"}
    k.observe(["alone"])
    body = k.http.post(k.url("/learn")).json()
    assert body == {"status": "learned", "pattern_name": "", "session_id": k.session_id, "processor_id": None,
                    "message": "Learned pattern  from 0 events"}


def test_same_sequence_same_name_across_nodes(base_url):
    a, b = KatoClient(base_url), KatoClient(base_url)
    assert a.learn_sequence([["rep"], ["seq"]]) == b.learn_sequence([["rep"], ["seq"]])
    assert a.learn_sequence([["rep", "seq"]]) != a.learn_sequence([["rep", "seq", "rep", "seq"]])


def test_other_keys_under_the_session_prefix_are_not_sessions(base_url):
    """The active index and the node pointers live under ``kato:session:`` too; as session ids they are
    unknown sessions (a DELETE used to remove the index, a GET of a node pointer gave a 500)."""
    k = KatoClient(base_url)
    k.observe(["keep"])
    assert requests.get(f"{base_url}/sessions/count").json()["active_session_count"] >= 1
    for sid in ("_active_index", f"node:{k.node_id}:active"):
        assert requests.get(f"{base_url}/sessions/{sid}").status_code == 404, sid
        assert requests.get(f"{base_url}/sessions/{sid}/stm").status_code == 404, sid
        assert requests.post(f"{base_url}/sessions/{sid}/extend", params={"ttl_seconds": 60}).status_code == 404
        assert requests.get(f"{base_url}/sessions/{sid}/exists").json()["exists"] is False, sid
        assert requests.delete(f"{base_url}/sessions/{sid}").status_code == 404, sid
    assert requests.get(f"{base_url}/sessions/count").json()["active_session_count"] >= 1  # the index is intact
    assert k.stm() == [["keep"]]


def test_unknown_session_is_404_with_detail_and_error(base_url):
    sid = "session-does-not-exist"
    for method, path in (("GET", "/stm"), ("POST", "/observe"), ("POST", "/clear-stm"), ("POST", "/learn"),
                         ("GET", "/predictions"), ("DELETE", ""), ("POST", "/config"),
                         ("POST", "/extend?ttl_seconds=0"), ("POST", "/extend?ttl_seconds=x"),
                         ("POST", "/observe-sequence"), ("GET", "/cognition-data")):
        r = requests.request(method, f"{base_url}/sessions/{sid}{path}", json={"strings": [None]})
        assert r.status_code == 404, (method, path)
        body = r.json()
        assert body["error"]["code"] == "SESSION_NOT_FOUND" and body["error"]["session_id"] == sid
        assert sid in body["detail"]
    r = requests.get(f"{base_url}/sessions/{sid}")
    assert r.status_code == 404 and "detail" in r.json()
    assert requests.get(f"{base_url}/sessions/{sid}/exists").json() == {"exists": False, "expired": False,
                                                                       "session_id": sid}


def test_delete_twice_and_observe_after_delete(base_url):
    k = KatoClient(base_url)
    first = k.http.delete(f"{base_url}/sessions/{k.session_id}")
    assert first.json() == {"status": "deleted", "session_id": k.session_id}
    assert k.http.delete(f"{base_url}/sessions/{k.session_id}").status_code in (200, 404)
    assert k.http.post(k.url("/observe"), json={"strings": ["a"]}).status_code == 404


def test_count_drops_by_exactly_the_deleted_sessions(base_url):
    before = requests.get(f"{base_url}/sessions/count").json()["active_session_count"]
    clients = [KatoClient(base_url) for _ in range(5)]
    assert requests.get(f"{base_url}/sessions/count").json()["active_session_count"] == before + 5
    for c in clients:
        c.http.delete(f"{base_url}/sessions/{c.session_id}")
    assert requests.get(f"{base_url}/sessions/count").json()["active_session_count"] == before


@pytest.mark.slow
def test_ttl_expiry_sliding_renewal_and_extend(base_url):
    short = KatoClient(base_url, ttl_seconds=1)
    assert requests.get(f"{base_url}/sessions/{short.session_id}/exists").json()["exists"] is True
    time.sleep(2.2)
    assert requests.get(f"{base_url}/sessions/{short.session_id}/exists").json()["exists"] is False
    assert short.http.get(short.url("/stm")).status_code == 404

    sliding = KatoClient(base_url, ttl_seconds=3)
    for _ in range(4):
        time.sleep(1.5)
        assert sliding.http.get(sliding.url("/stm")).status_code == 200
    time.sleep(4)
    assert sliding.http.get(sliding.url("/stm")).status_code == 404

    extended = KatoClient(base_url, ttl_seconds=2)
    r = extended.http.post(extended.url("/extend"), params={"ttl_seconds": 6})
    assert r.json() == {"status": "extended", "session_id": extended.session_id, "ttl_seconds": 6}
    time.sleep(3)
    assert requests.get(f"{base_url}/sessions/{extended.session_id}/exists").json()["exists"] is True


def test_get_session_reports_remaining_ttl(base_url):
    k = KatoClient(base_url, ttl_seconds=120)
    body = requests.get(f"{base_url}/sessions/{k.session_id}").json()
    assert 0 < body["ttl_seconds"] <= 120 and body["node_id"] == k.node_id


def test_sessions_are_isolated_but_share_ltm(base_url):
    a = KatoClient(base_url)
    b = KatoClient(base_url, node_id=a.node_id)
    other = KatoClient(base_url)
    a.observe(["only_a"])
    assert b.stm() == [] and other.stm() == []
    a.clear_stm()
    a.learn_sequence([["shared"], ["memory"], ["here"]])
    b.observe(["shared"])
    b.observe(["memory"])
    assert [p["future"] for p in b.predictions()] == [[["here"]]]
    other.observe(["shared"])
    other.observe(["memory"])
    assert other.predictions() == []
    other.clear_all()
    assert len(b.predictions()) == 1


def test_ten_concurrent_observes_give_ten_events(base_url):
    assert_concurrent_observes_are_exact(KatoClient(base_url))


def test_config_get_update_and_validation(base_url):
    k = KatoClient(base_url)
    assert k.http.get(k.url("/config")).json()["config"]["recall_threshold"] == 0.1
    r = k.update_config({"recall_threshold": 0.75})
    assert r.json() == {"status": "okay", "message": "Configuration updated", "session_id": k.session_id}
    assert k.http.get(k.url("/config")).json()["config"]["recall_threshold"] == 0.75
    flat = k.http.post(k.url("/config"), json={"max_predictions": 9, "unknown": 1})
    assert flat.status_code == 200
    config = k.http.get(k.url("/config")).json()["config"]
    assert config["max_predictions"] == 9 and config["recall_threshold"] == 0.75 and "unknown" not in config
    for bad in ({"recall_threshold": -0.1}, {"recall_threshold": 1.1}, {"recall_threshold": "invalid"},
                {"max_pattern_length": -1}, {"persistence": 0}, {"persistence": 101}, {"max_predictions": 0},
                {"max_predictions": 10001}, {"indexer_type": "INVALID_TYPE"}, {"rank_sort_algo": "invalid"}):
        r = k.update_config(bad)
        assert r.status_code == 400, bad
        detail = r.json()["detail"]
        assert detail["error"] == "Configuration validation failed" and set(detail["validation_errors"]) == set(bad)
    assert k.http.post(k.url("/config"), json=[1, 2]).status_code == 422
    r = k.update_config({"use_token_matching": False})
    assert k.http.get(k.url("/config")).json()["config"]["sort_symbols"] is False


def test_learned_pattern_is_visible_to_the_next_request(base_url):
    k = KatoClient(base_url)
    for i in range(5):
        name = k.learn_sequence([[f"rw{i}"], [f"rx{i}"], [f"ry{i}"]])
        k.observe([f"rw{i}"])
        k.observe([f"rx{i}"])
        assert [p["name"] for p in k.predictions()] == [name[5:]]
        k.clear_stm()


def test_removed_endpoints_stay_absent(base_url):
    for method, path in (("POST", "/observe"), ("GET", "/stm"), ("POST", "/learn"), ("GET", "/predictions"),
                         ("POST", "/clear-stm"), ("GET", "/gene/X")):
        r = requests.request(method, f"{base_url}{path}")
        assert r.status_code in (404, 405) and "detail" in r.json()
