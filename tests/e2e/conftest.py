"""A real HTTP server (uvicorn) around the single-process runtime, on the test session's engines."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from cluster.ops.local import start_local
from cluster.ops.ports import free_port
from schema.settings import Settings
from serve_app.api.app import ServiceHolder, build_app
from serve_app.runtime import attach_observability


def processes_in(directory: str | os.PathLike) -> list[int]:
    """Processes whose working directory is inside ``directory`` (the embedded Redis runs in data_dir/redis)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if Path(os.readlink(entry / "cwd")).is_relative_to(directory):
                    found.append(int(entry.name))
    return found


class ServerThread:
    def __init__(self, app, port: int):
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                                    ws="websockets-sansio", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{port}"

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "HTTP server did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def local_runtime(chdb_store, embedded_redis, tmp_path_factory):
    settings = Settings.from_env({}, data_dir=str(tmp_path_factory.mktemp("kato-data")),
                                 store=f"chdb://{chdb_store.path}", redis=embedded_redis.url, shards=2)
    runtime = start_local(settings)
    yield runtime
    for shard in runtime.shards.shards.values():
        shard.stop_flusher()
    runtime.client.close()


@pytest.fixture(scope="session")
def holder(local_runtime, embedded_redis) -> ServiceHolder:
    holder = ServiceHolder(service=local_runtime.service)
    attach_observability(holder, local_runtime.client, embedded_redis.url, local_runtime.settings)
    return holder


@pytest.fixture(scope="session")
def base_url(holder) -> Iterator[str]:
    with ServerThread(build_app(holder), free_port()) as server:
        yield server.url
