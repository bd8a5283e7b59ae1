"""A service in the compact Redis layout answers over HTTP exactly as one in KATO's layout: the same random
workload (learns, re-learns with emotives and metadata, observes, predictions) sent to both, compared answer by
answer; and ``up`` refuses a layout other than the one its Redis holds, in one clear line."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from cluster.ops.embedded_redis import EmbeddedRedis
from cluster.ops.local import start_local
from cluster.ops.ports import free_port
from cluster.stores.pattern_layout import COMPACT, KATO, claim_layout, listpack_entries_for
from cluster.stores.redis_client import connect
from schema.naming import kb_id_for
from schema.settings import Settings
from serve_app.api.app import ServiceHolder, build_app
from serve_app.runtime import attach_observability
from tests.e2e.conftest import ServerThread
from tests.e2e.kato_client import KatoClient

pytestmark = pytest.mark.integration
WORDS = [f"w{i}" for i in range(8)]
CONFIGS = [{}, {"recall_threshold": 0.3, "max_predictions": 4}, {"affinity_emotive": "joy"}]


@pytest.fixture(scope="module")
def compact_service(chdb_store, tmp_path_factory) -> Iterator[tuple[str, str]]:
    """The single-process service on its own Redis, in the compact layout (the session's chdb store: one per
    process); its URL and its Redis's."""
    root = tmp_path_factory.mktemp("compact")
    with EmbeddedRedis(root / "redis", listpack_entries=listpack_entries_for(COMPACT)) as redis_server:
        settings = Settings.from_env({}, data_dir=str(root), store=f"chdb://{chdb_store.path}",
                                     redis=redis_server.url, shards=2, redis_layout=COMPACT)
        runtime = start_local(settings)
        try:
            holder = ServiceHolder(service=runtime.service)
            attach_observability(holder, runtime.client, redis_server.url, settings)
            with ServerThread(build_app(holder), free_port()) as server:
                yield server.url, redis_server.url
        finally:
            for shard in runtime.shards.shards.values():
                shard.stop_flusher()
            runtime.client.close()


def _observation(rng: random.Random) -> dict[str, Any]:
    fields: dict[str, Any] = {"strings": rng.sample(WORDS, rng.randint(1, 3))}
    if rng.random() < 0.4:
        fields["emotives"] = {rng.choice(["joy", "fear"]): rng.choice([-1.0, -0.5, 0.25, 0.5, 1.0])}
    if rng.random() < 0.2:
        fields["metadata"] = {"tag": rng.choice("abc")}
    return fields


def _walk(client: KatoClient, rng: random.Random, steps: int) -> list[Any]:
    answers: list[Any] = []
    for _ in range(steps):
        roll = rng.random()
        if roll < 0.55:
            answers.append(client.observe(**_observation(rng))["status"])
        elif roll < 0.75:
            answers.append(client.learn() if len(client.stm()) >= 2 else client.stm())
        elif roll < 0.95:
            answers.append(client.predictions())
        else:
            client.clear_stm()
    return answers


@pytest.mark.parametrize("seed", [5, 6])
def test_both_layouts_answer_alike_over_http(base_url, compact_service, seed):
    compact_url, _ = compact_service
    node = f"layouts_{seed}_{random.Random().getrandbits(32)}"
    got = {}
    for url in (base_url, compact_url):
        rng = random.Random(seed)
        clients = [KatoClient(url, node, config=config) for config in CONFIGS]
        got[url] = [_walk(clients[rng.randrange(len(clients))], rng, 1) for _ in range(150)]
        got[url].append([c.predictions() for c in clients])
        got[url].append(clients[0].http.get(f"{url}/bulk/export", params={"node_id": node}).text.splitlines())
    assert got[compact_url] == got[base_url]
    assert len(got[base_url][-1]) >= 3  # the export, every pattern with its frequency, emotives and metadata
    assert sum(bool(p) for step in got[base_url] for answer in step if isinstance(answer, list)
               for p in answer) >= 5


def test_the_compact_service_keeps_no_pattern_keys_of_katos(compact_service):
    compact_url, redis_url = compact_service
    client = KatoClient(compact_url, "layout_keys")
    for word in ("p", "q", "r"):
        client.observe([word])
    name = client.learn()
    redis_client = connect(redis_url)
    kb_keys = list(redis_client.scan_iter(match=f"{client.session['node_id']}*"))
    assert kb_keys and not any(":frequency:" in key or ":emotives:" in key for key in kb_keys), kb_keys
    assert redis_client.exists(f"{kb_id_for(client.node_id, 'kato')}:pf:{name.removeprefix('PTRN|')[:3]}")
    response = client.http.get(f"{compact_url}/pattern/{name}", params={"node_id": client.node_id})
    assert response.json()["pattern"]["pattern"]["frequency"] == 1
    assert client.http.get(f"{compact_url}/status").json()["redis_layout"] == COMPACT


def test_up_refuses_the_other_layout_in_one_line(tmp_path):
    with EmbeddedRedis(tmp_path / "redis") as redis_server:
        claim_layout(connect(redis_server.url), KATO)
        env = {**os.environ, "PYTHONPATH": os.getcwd()}
        result = subprocess.run([sys.executable, "-m", "cluster.ops.cli", "up", "--data-dir", str(tmp_path / "data"),
                                 "--redis", redis_server.url, "--redis-layout", COMPACT, "--port", str(free_port())],
                                capture_output=True, text=True, timeout=120, env=env)
        assert result.returncode == 1
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: this Redis holds KBs in the 'kato' layout"), lines
        result = subprocess.run([sys.executable, "-m", "cluster.ops.cli", "up", "--data-dir", str(tmp_path / "data"),
                                 "--redis-layout", "sparse", "--port", str(free_port())],
                                capture_output=True, text=True, timeout=120, env=env)
        assert result.returncode == 1
        assert [line for line in result.stderr.splitlines() if line.strip()] == \
            ["error: redis_layout must be one of kato, compact, compact:65536, compact:1048576 (got 'sparse')"]
