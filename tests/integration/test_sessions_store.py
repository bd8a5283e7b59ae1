"""Sessions (TTL, index, exists/expired) and the cluster-wide per-session lock, on a real redis-server."""

from __future__ import annotations

import json
import threading
import time

import pytest

from cluster.stores.kb_overlay import overlay_key
from cluster.stores.key_space import hash_tag
from cluster.stores.redis_client import connect
from cluster.stores.sessions import (
    ACTIVE_INDEX,
    SessionLockLost,
    SessionLockTimeout,
    SessionStore,
    kb_pending_key,
    node_active_key,
    pending_key,
    predictions_key,
    session_key,
)

T = hash_tag  # the deployment's hash tag of a client (empty on a single Redis)

pytestmark = pytest.mark.integration
REDIS_KINDS = ("single", "cluster")  # each Redis test runs on a single server and on a Redis Cluster


def test_create_get_save_delete(redis_client):
    store = SessionStore(redis_client)
    s = store.create("node-1", ttl_seconds=120)
    sid = s["session_id"]
    assert 115 <= redis_client.ttl(session_key(sid, T(redis_client))) <= 120
    assert redis_client.get(node_active_key("node-1", T(redis_client))) == sid
    assert store.active_for_node("node-1") == sid
    s["stm"] = [["a"]]
    store.save(s)
    assert store.get(sid)["stm"] == [["a"]]
    assert store.exists(sid) == {"exists": True, "expired": False}
    assert store.count() == 1
    assert store.delete(sid) is True
    assert store.get(sid) is None and store.count() == 0
    assert store.exists(sid) == {"exists": False, "expired": False}
    assert redis_client.exists(node_active_key("node-1", T(redis_client))) == 0
    assert store.delete(sid) is False


def test_predictions_are_kept_apart_and_loaded_on_request(redis_client):
    store = SessionStore(redis_client)
    s = store.create("node-p", ttl_seconds=120)
    sid = s["session_id"]
    s["predictions"] = [{"name": "PTRN|abc", "potential": 1.5}]
    store.save(s)
    assert "predictions" not in json.loads(redis_client.get(session_key(sid, T(redis_client))))
    assert "predictions" not in store.get(sid)
    assert store.get(sid, with_predictions=True)["predictions"] == [{"name": "PTRN|abc", "potential": 1.5}]
    unloaded = store.get(sid)
    unloaded["stm"] = [["x"]]
    store.save(unloaded)  # a save without predictions keeps the stored ones, and their expiry follows
    record = store.get(sid, with_predictions=True)
    assert record["stm"] == [["x"]] and record["predictions"] == [{"name": "PTRN|abc", "potential": 1.5}]
    assert 115 <= redis_client.ttl(predictions_key(sid, T(redis_client))) <= 120
    assert store.extend(sid, 900) and redis_client.ttl(predictions_key(sid, T(redis_client))) > 800
    assert store.delete(sid) and redis_client.exists(predictions_key(sid, T(redis_client))) == 0


def _pending(unique_id: str) -> dict:
    return {"record": f"r-{unique_id}", "unique_id": unique_id, "kb_id": "kb_p", "stm": [["a"]], "config": {}}


def test_a_pending_record_replaces_the_predictions_until_settled(redis_client):
    store = SessionStore(redis_client)
    s = store.create("node-q", ttl_seconds=120)
    sid = s["session_id"]
    s["predictions"] = [{"name": "old"}]
    store.save(s)
    s["predictions"], s["pending_predictions"] = None, _pending("obs-1")
    store.save(s)
    assert "pending_predictions" not in json.loads(redis_client.get(session_key(sid, T(redis_client))))
    assert redis_client.exists(predictions_key(sid, T(redis_client))) == 0 and store.pending_sessions("kb_p") == [sid]
    first, overlay = store.pending(sid)
    assert json.loads(first) == _pending("obs-1") and 115 <= redis_client.ttl(pending_key(sid, T(redis_client))) <= 120
    assert not overlay and redis_client.hgetall(overlay_key(sid, T(redis_client))) == {"@record": "r-obs-1"}
    assert 115 <= redis_client.ttl(overlay_key(sid, T(redis_client))) <= 120
    redis_client.hset(overlay_key(sid, T(redis_client)), "sk", "=1")  # what a learn would keep for this record
    s["pending_predictions"] = _pending("obs-2")  # the next observe replaces it before it is settled
    store.save(s)
    # the old record's overlay is gone:
    assert redis_client.hgetall(overlay_key(sid, T(redis_client))) == {"@record": "r-obs-2"}
    assert store.settle(sid, first, [{"name": "stale"}]) is False
    store.forget_settled("kb_p", sid)  # still pending: stays in the KB's set
    assert store.pending_sessions("kb_p") == [sid]
    assert store.settle(sid, store.pending(sid)[0], [{"name": "fresh"}]) is True
    assert store.pending(sid)[0] is None and store.pending_sessions("kb_p") == []
    assert redis_client.exists(overlay_key(sid, T(redis_client))) == 0
    assert store.get(sid, with_predictions=True)["predictions"] == [{"name": "fresh"}]
    assert 115 <= redis_client.ttl(predictions_key(sid, T(redis_client))) <= 120
    s["pending_predictions"] = _pending("obs-3")
    store.save(s)
    s["pending_predictions"], s["predictions"] = None, []  # clear-stm: no predictions, nothing pending
    store.save(s)
    assert store.pending(sid)[0] is None and store.get(sid, with_predictions=True)["predictions"] == []
    assert redis_client.exists(overlay_key(sid, T(redis_client))) == 0
    store.forget_settled("kb_p", sid)
    assert redis_client.exists(kb_pending_key("kb_p", T(redis_client))) == 0
    s["pending_predictions"] = _pending("obs-4")
    store.save(s)
    gone = (pending_key(sid, T(redis_client)), overlay_key(sid, T(redis_client)))
    assert store.delete(sid) and redis_client.exists(*gone) == 0


def test_ttl_expiry_and_sliding_window(redis_client):
    store = SessionStore(redis_client)
    short = store.create("n", ttl_seconds=1)["session_id"]
    sliding = store.create("m", ttl_seconds=2)["session_id"]
    for _ in range(3):
        time.sleep(0.8)
        assert store.get(sliding) is not None  # each access resets the 2 s window
    time.sleep(0.6)
    assert store.get(short) is None
    assert store.exists(short) == {"exists": False, "expired": True}
    assert store.count() == 1
    assert redis_client.sismember(T(redis_client) + ACTIVE_INDEX, short) == 0  # pruned by count()
    assert store.exists(sliding)["exists"] is True


def test_extend_sets_key_ttl(redis_client):
    store = SessionStore(redis_client)
    sid = store.create("n", ttl_seconds=60)["session_id"]
    assert store.extend(sid, 600) is True
    assert redis_client.ttl(session_key(sid, T(redis_client))) > 500
    assert store.get(sid)["ttl_seconds"] == 60
    assert store.extend("missing", 10) is False


def test_lock_mutual_exclusion_across_clients(redis_url, redis_client):
    inside, overlaps, done = [0], [0], []
    guard = threading.Lock()

    def worker() -> None:
        client = connect(redis_url)
        store = SessionStore(client)
        for _ in range(10):
            with store.lock("s1", timeout=5):
                with guard:
                    inside[0] += 1
                    if inside[0] > 1:
                        overlaps[0] += 1
                time.sleep(0.002)
                with guard:
                    inside[0] -= 1
                done.append(1)
        client.close()

    threads = [threading.Thread(target=worker) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(done) == 50 and overlaps[0] == 0
    assert redis_client.exists(T(redis_client) + "kato:lock:session:s1") == 0


def test_lock_read_modify_write_counts_every_update(redis_url, redis_client):
    """Ten concurrent observe-like updates of one session record give ten events."""
    store = SessionStore(redis_client)
    sid = store.create("n", ttl_seconds=60)["session_id"]

    def observe(i: int) -> None:
        client = connect(redis_url)
        s = SessionStore(client)
        with s.lock(sid):
            session = s.get(sid)
            time.sleep(0.005)
            session["stm"].append([f"e{i}"])
            s.save(session)
        client.close()

    threads = [threading.Thread(target=observe, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store.get(sid)["stm"]) == 10


def test_lock_timeout_and_expiry_after_holder_dies(redis_client):
    store = SessionStore(redis_client)
    dead = store.lock("s2", timeout=0.5, renew=False)
    dead.__enter__()  # acquired, never renewed nor released: the holder "dies"
    start = time.monotonic()
    with pytest.raises(SessionLockTimeout), store.lock("s2", timeout=5, blocking_timeout=0.1):
        pass
    assert time.monotonic() - start < 1.0
    with store.lock("s2", timeout=5, blocking_timeout=2.0):  # lease of the dead holder runs out
        assert time.monotonic() - start >= 0.4


def test_lock_lease_lost_is_reported(redis_client):
    store = SessionStore(redis_client)
    with pytest.raises(SessionLockLost), store.lock("s3", timeout=0.1, renew=False):
        time.sleep(0.3)
        with store.lock("s3", timeout=5, blocking_timeout=0):  # someone else takes it meanwhile
            pass


def test_a_live_holder_keeps_its_lock_past_the_lease(redis_client):
    store = SessionStore(redis_client)
    with store.lock("long-op", timeout=0.3):
        time.sleep(1.0)  # three leases long: renewed meanwhile, so nobody else got in
        with pytest.raises(SessionLockTimeout), store.lock("long-op", timeout=0.3, blocking_timeout=0.05):
            pass
    with store.lock("long-op", timeout=0.3, blocking_timeout=0.5):
        pass


def test_checkout_reads_under_the_lock_and_saves_releasing_it(redis_client):
    store = SessionStore(redis_client)
    sid = store.create("n", ttl_seconds=60)["session_id"]
    with store.checkout(sid, timeout=5) as held:
        assert held.record["session_id"] == sid
        assert redis_client.exists(T(redis_client) + f"kato:lock:session:{sid}") == 1
        with pytest.raises(SessionLockTimeout), store.lock(sid, timeout=5, blocking_timeout=0.05):
            pass
        held.record["stm"] = [["x"]]
        held.save(held.record)
        assert redis_client.exists(T(redis_client) + f"kato:lock:session:{sid}") == 0  # released by the save itself
    assert store.get(sid)["stm"] == [["x"]]


def test_checkout_of_an_unknown_session_reads_none_and_leaves_no_lock(redis_client):
    store = SessionStore(redis_client)
    for sid in ("no-such-session", "bad:id"):
        with store.checkout(sid, timeout=5) as held:
            assert held.record is None
        assert redis_client.exists(T(redis_client) + f"kato:lock:session:{sid}") == 0


def test_checkout_left_unsaved_releases_and_slides_the_expiry(redis_client):
    store = SessionStore(redis_client)
    sid = store.create("n", ttl_seconds=60)["session_id"]
    redis_client.expire(session_key(sid, T(redis_client)), 5)
    with pytest.raises(RuntimeError), store.checkout(sid, timeout=5):
        raise RuntimeError("the operation failed")
    assert redis_client.exists(T(redis_client) + f"kato:lock:session:{sid}") == 0
    assert redis_client.ttl(session_key(sid, T(redis_client))) > 50  # touched back to its own ttl_seconds


def test_a_checkout_whose_lease_was_lost_writes_nothing(redis_client):
    store = SessionStore(redis_client)
    sid = store.create("n", ttl_seconds=60)["session_id"]
    with pytest.raises(SessionLockLost), store.checkout(sid, timeout=0.1) as held:
        store._renewer.drop(held.key, held.token)  # this holder stops renewing (a stalled process)
        time.sleep(0.3)
        with store.lock(sid, timeout=5, blocking_timeout=0):  # someone else takes it meanwhile
            pass
        held.record["stm"] = [["lost"]]
        held.save(held.record)
    assert store.get(sid)["stm"] == []


def test_a_checkout_is_renewed_past_its_lease(redis_client):
    store = SessionStore(redis_client)
    sid = store.create("n", ttl_seconds=60)["session_id"]
    with store.checkout(sid, timeout=0.3) as held:
        time.sleep(1.0)
        with pytest.raises(SessionLockTimeout), store.lock(sid, timeout=0.3, blocking_timeout=0.05):
            pass
        held.save(held.record)


def test_a_read_slides_every_key_to_the_sessions_own_ttl(redis_client):
    store = SessionStore(redis_client)
    session = store.create("n", ttl_seconds=90)
    sid = session["session_id"]
    session["predictions"] = [{"name": "p"}]
    store.save(session)
    for key in (session_key(sid, T(redis_client)), predictions_key(sid, T(redis_client))):
        redis_client.expire(key, 3)
    record = store.get(sid, touch=True, with_predictions=True)
    assert record["predictions"] == [{"name": "p"}]
    touched = (session_key(sid, T(redis_client)), predictions_key(sid, T(redis_client)))
    assert all(85 <= redis_client.ttl(k) <= 90 for k in touched)
    redis_client.expire(session_key(sid, T(redis_client)), 3)
    assert "predictions" not in store.get(sid, touch=False)
    assert redis_client.ttl(session_key(sid, T(redis_client))) <= 3
