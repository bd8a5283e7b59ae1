"""EmbeddedRedis: a real redis-server with AOF; sessions and KB statistics survive a restart."""

from __future__ import annotations

import pytest
import redis

from cluster.ops.embedded_redis import EmbeddedRedis, find_redis_server, redis_or_embedded
from cluster.stores.engines import default_store_dsn
from cluster.stores.pattern_layout import COMPACT, KATO, LISTPACK_ENTRIES
from cluster.stores.redis_kb import RedisKB
from cluster.stores.sessions import SessionStore
from schema.learning import make_pattern

pytestmark = pytest.mark.integration


def test_aof_restart_keeps_sessions_and_statistics(tmp_path):
    with EmbeddedRedis(tmp_path) as server:
        client = redis.Redis.from_url(server.url, decode_responses=True)
        kb = RedisKB(client)
        p = make_pattern([["a", "b"], ["c"]], emotives=[{"joy": 0.5}])
        kb.learn("n1_kato", p, 5)
        kb.learn("n1_kato", p, 5)
        sid = SessionStore(client).create("n1", ttl_seconds=600, stm=[["x"]])["session_id"]
        before = kb.corpus_stats("n1_kato", [p.name], ["a"], ["a"])
        client.close()
        old_pid = server._proc.pid
        server.restart()
        assert server._proc.pid != old_pid
        assert (tmp_path / "redis").is_dir()
        client = redis.Redis.from_url(server.url, decode_responses=True)
        assert RedisKB(client).corpus_stats("n1_kato", [p.name], ["a"], ["a"]) == before
        assert before.frequencies == {p.name: 2} and before.affinity == {"a": {"joy": 1.0}}
        assert SessionStore(client).get(sid)["stm"] == [["x"]]
        assert client.ttl(f"kato:session:{sid}") > 500
        client.close()
    assert not server.running


def test_stop_is_clean_and_idempotent(tmp_path):
    server = EmbeddedRedis(tmp_path)
    proc = server._proc
    server.stop()
    assert proc.returncode is not None
    server.stop()
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(server.url, socket_connect_timeout=0.5).ping()


def test_redis_server_lookup_env(monkeypatch, tmp_path):
    monkeypatch.setenv("KATO_REDIS_SERVER", str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError):
        find_redis_server()
    monkeypatch.delenv("KATO_REDIS_SERVER")
    assert find_redis_server().endswith("redis-server")


def test_open_redis_defaults_to_embedded(tmp_path):
    client, embedded = redis_or_embedded(None, tmp_path)
    try:
        assert embedded is not None and client.ping()
        assert client.set("k", "v") and client.get("k") == "v"
    finally:
        client.close()
        embedded.stop()
    assert default_store_dsn(tmp_path) == f"chdb://{tmp_path}/chdb"


@pytest.mark.parametrize("layout", [KATO, COMPACT, "compact:65536"])
def test_only_a_compact_deployment_raises_the_listpack_bound(tmp_path, layout):
    """The bound is global and a listpack is scanned on each access: KATO's layout keeps Redis's default, so
    its symbol statistics stay hash tables; the compact layout's buckets need the raised one."""
    client, embedded = redis_or_embedded(None, tmp_path, layout)
    try:
        entries = int(client.config_get("hash-max-listpack-entries")["hash-max-listpack-entries"])
        assert entries < 1000 if layout == KATO else entries == LISTPACK_ENTRIES  # KATO's: redis-server's default
        symbols = {f"s{i}": 1 for i in range(1000)}
        client.hset("symbols", mapping=symbols)
        assert client.object("encoding", "symbols") == ("hashtable" if layout == KATO else "listpack")
    finally:
        client.close()
        assert embedded is not None
        embedded.stop()
