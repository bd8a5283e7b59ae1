"""Shared fixtures for integration tests: a real redis-server and a real embedded ClickHouse (chdb).

chdb binds one data directory per process (a second path fails while the first is open), so the chdb
store is session-scoped and tests isolate themselves with unique kb_ids (``make_kb_id``).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator

import pytest

_kb_counter = itertools.count()


@pytest.fixture(scope="session")
def embedded_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from cluster.ops.embedded_redis import EmbeddedRedis
    from cluster.stores.pattern_layout import LISTPACK_ENTRIES

    # Tests of both layouts share it: configured as a compact deployment's (the kato layout reads the same).
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis-data"), listpack_entries=LISTPACK_ENTRIES)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A real 3-master Redis Cluster (started the first time a test asks for it)."""
    from cluster.ops.embedded_redis import EmbeddedRedisCluster
    from cluster.stores.pattern_layout import LISTPACK_ENTRIES

    with EmbeddedRedisCluster(tmp_path_factory.mktemp("redis-cluster"), listpack_entries=LISTPACK_ENTRIES) as cluster:
        yield cluster


REDIS_KINDS_ATTRIBUTE = "REDIS_KINDS"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A module that sets ``REDIS_KINDS = ("single", "cluster")`` runs its Redis tests on both deployments."""
    kinds = getattr(metafunc.module, REDIS_KINDS_ATTRIBUTE, None)
    if kinds and "redis_kind" in metafunc.fixturenames:
        metafunc.parametrize("redis_kind", kinds)


@pytest.fixture
def redis_kind() -> str:
    return "single"


@pytest.fixture
def redis_url(redis_kind: str, request: pytest.FixtureRequest) -> str:
    """The URL of the test's Redis: the single server, or the Redis Cluster (``redis+cluster://``)."""
    server = request.getfixturevalue("redis_cluster" if redis_kind == "cluster" else "embedded_redis")
    return server.url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[object]:
    """A decoded client (the service's own: ``cluster.stores.redis_client.connect``) on a flushed database
    (tests within one process run one at a time)."""
    from cluster.stores.redis_client import connect

    client = connect(redis_url)
    client.flushdb()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def pattern_log(redis_url, redis_client) -> object:
    """The write-ahead log of pattern rows on the test Redis (flushed with it by ``redis_client``), in a
    namespace of its own: the e2e service in this process has shards 0 and 1 on the same Redis."""
    from cluster.stores.pattern_log import PatternLog

    return PatternLog.from_url(redis_url, f"test{next(_kb_counter)}")


@pytest.fixture(scope="session")
def chdb_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from cluster.stores.clickhouse import ChdbStore

    store = ChdbStore(os.fspath(tmp_path_factory.mktemp("chdb-data")))
    store.apply_ddl()
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def make_kb_id(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """Unique kb_ids per test: ``make_kb_id("a")`` -> ``t<n>_<test>_a_kato``."""
    test = "".join(c if c.isalnum() else "_" for c in request.node.name)[:30]

    def make(tag: str = "") -> str:
        return f"t{next(_kb_counter)}_{test}_{tag}_kato"

    return make


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[object]:
    """One local Ray cluster for the whole test session (workers import the project from this checkout)."""
    import ray

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False, configure_logging=False,
             runtime_env={"env_vars": {"PYTHONPATH": path}})
    try:
        yield ray
    finally:
        ray.shutdown()


_exit_status: list[int] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _exit_status.append(int(exitstatus))


def pytest_unconfigure(config: pytest.Config) -> None:
    """Leave without running native destructors: embedded ClickHouse (chdb) can crash in its static
    teardown while other native threads (Ray, uvicorn) are still winding down, turning a green run into a
    segfault after the summary. Every fixture has already stopped what it started by now."""
    if _exit_status and os.environ.get("KATO_TEST_HARD_EXIT", "1") == "1":
        import sys

        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_exit_status[-1])
