"""A private ``redis-server`` for single-machine mode and tests: AOF on, fsync always, no RDB snapshots."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.retry import Retry

from cluster.ops.ports import free_port, free_ports
from cluster.stores.engines import open_redis
from cluster.stores.pattern_layout import KATO, listpack_entries_for
from schema.settings import Settings

_FALLBACK_DIRS = ("/usr/sbin", "/usr/bin", "/usr/local/bin")


def find_redis_server(explicit: str | None = None) -> str:
    """``explicit``, else the ``redis_server`` setting (``KATO_REDIS_SERVER``), else ``redis-server`` on PATH, else
    the usual system directories."""
    explicit = Settings.from_env().redis_server if explicit is None else explicit
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise FileNotFoundError(f"KATO_REDIS_SERVER={explicit!r} is not executable")
        return explicit
    found = shutil.which("redis-server")
    if found:
        return found
    for directory in _FALLBACK_DIRS:
        candidate = os.path.join(directory, "redis-server")
        if os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError("redis-server not found (set KATO_REDIS_SERVER or install redis-server)")


class EmbeddedRedis:
    """Starts on construction; ``stop()`` shuts it down (SHUTDOWN, then waits; kills only its own pid)."""

    def __init__(self, data_dir: str | os.PathLike[str], port: int | None = None,
                 start_timeout: float = 10.0, executable: str | None = None, extra_args: Sequence[str] = (),
                 listpack_entries: int | None = None) -> None:
        """``listpack_entries``: Redis's ``hash-max-listpack-entries`` (None: its default; the compact layout's
        buckets need ``cluster.stores.pattern_layout.LISTPACK_ENTRIES``)."""
        self.data_dir = Path(data_dir) / "redis"
        self.extra_args = list(extra_args)
        if listpack_entries is not None:
            self.extra_args += ["--hash-max-listpack-entries", str(listpack_entries)]
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.start_timeout = start_timeout
        self.executable = find_redis_server(executable)
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.RLock()
        self._watch: threading.Thread | None = None
        self._watching = threading.Event()
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        if self.running:
            return
        args = [
            self.executable, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.data_dir),
            "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no",
            "--protected-mode", "yes", "--logfile", str(self.data_dir / "redis.log"), *self.extra_args,
        ]
        self._proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE)
        deadline = time.monotonic() + self.start_timeout
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.2)
        try:
            while True:
                if self._proc.poll() is not None:
                    err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                    self._proc = None
                    raise RuntimeError(f"redis-server exited at start: {err.strip()} (see {self.data_dir})")
                try:
                    if client.ping():
                        return
                except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
                    pass
                if time.monotonic() > deadline:
                    self._stop(10.0)
                    raise TimeoutError(f"redis-server did not answer PING within {self.start_timeout} s")
                time.sleep(0.02)
        finally:
            client.close()

    def supervise(self, interval: float = 0.5) -> None:
        """Restart the server whenever it dies (its AOF, fsynced on every write, brings back every acknowledged
        write), until ``stop``."""
        if self._watch is not None:
            return
        self._watching = threading.Event()

        def watch() -> None:
            while not self._watching.wait(interval):
                with self._lock:
                    if self._proc is not None and self._proc.poll() is not None:
                        self._proc = None
                        try:
                            self.start()
                        except (RuntimeError, TimeoutError):  # tried again at the next interval
                            self._proc = None

        self._watch = threading.Thread(target=watch, name="embedded-redis-watch", daemon=True)
        self._watch.start()

    def stop(self, timeout: float = 10.0) -> None:
        if self._watch is not None:
            self._watching.set()
            self._watch.join(timeout=timeout)
            self._watch = None
        with self._lock:
            self._stop(timeout)

    def _stop(self, timeout: float) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            # No retries: the connection dropping is SHUTDOWN succeeding, not a fault to retry with backoff.
            client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.5,
                                 retry=Retry(NoBackoff(), 0))
            try:
                client.shutdown(nosave=True)  # AOF (fsync always) already holds every write
            except (redis.ConnectionError, redis.ResponseError, redis.TimeoutError):
                pass
            finally:
                client.close()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)
        if proc.stderr:
            proc.stderr.close()

    def restart(self) -> None:
        with self._lock:
            self._stop(10.0)
            self.start()

    def __enter__(self) -> EmbeddedRedis:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __del__(self) -> None:
        proc = getattr(self, "_proc", None)
        if proc is not None and proc.poll() is None:
            proc.terminate()


class EmbeddedRedisCluster:
    """A private Redis Cluster of ``masters`` redis-servers (each an ``EmbeddedRedis`` with cluster mode on, AOF
    and fsync always), its slots spread by ``redis-cli --cluster create``; for tests and benchmarks."""

    def __init__(self, data_dir: str | os.PathLike[str], masters: int = 3, start_timeout: float = 30.0,
                 node_timeout_ms: int = 2000, listpack_entries: int | None = None) -> None:
        cluster_args = ("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                        "--cluster-node-timeout", str(node_timeout_ms))
        self.nodes: list[EmbeddedRedis] = []
        try:
            for i in range(masters):
                # the bus port is chosen too: the default (port + 10000) may lie among the kernel's ephemeral
                # ports, which outgoing connections take at any time
                port, bus = free_ports(2)
                self.nodes.append(EmbeddedRedis(Path(data_dir) / f"node{i}", port=port,
                                                extra_args=(*cluster_args, "--cluster-port", str(bus)),
                                                listpack_entries=listpack_entries))
            self._create(start_timeout)
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}"

    def node_for(self, key: str) -> EmbeddedRedis:
        """The node that serves ``key``'s slot."""
        return self.node_for_slot(key_slot(key.encode()))

    def move_slot(self, slot: int, target: EmbeddedRedis) -> None:
        """Migrate ``slot`` and its keys to ``target`` as a cluster resharding does (IMPORTING/MIGRATING, MIGRATE,
        then SETSLOT NODE on every master)."""
        source = self.node_for_slot(slot)
        if source is target:
            return
        with redis.Redis(host="127.0.0.1", port=source.port) as src, \
                redis.Redis(host="127.0.0.1", port=target.port) as dst:
            src_id, dst_id = _text(src.execute_command("CLUSTER MYID")), _text(dst.execute_command("CLUSTER MYID"))
            dst.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", src_id)
            src.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", dst_id)
            while keys := src.execute_command("CLUSTER GETKEYSINSLOT", slot, 1000):
                src.execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 10_000, "KEYS", *keys)
        for node in self.nodes:
            with redis.Redis(host="127.0.0.1", port=node.port) as client:
                client.execute_command("CLUSTER SETSLOT", slot, "NODE", dst_id)

    def node_for_slot(self, slot: int) -> EmbeddedRedis:
        with redis.Redis(host="127.0.0.1", port=self.nodes[0].port) as client:
            for start, end, owner, *_ in client.execute_command("CLUSTER SLOTS"):
                if int(start) <= slot <= int(end):
                    return next(n for n in self.nodes if n.port == int(owner[1]))
        raise LookupError(f"no node serves slot {slot}")

    def _create(self, timeout: float) -> None:
        cli = shutil.which("redis-cli") or os.path.join(os.path.dirname(self.nodes[0].executable), "redis-cli")
        addresses = [f"127.0.0.1:{n.port}" for n in self.nodes]
        subprocess.run([cli, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
                       check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       timeout=timeout)
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            with redis.Redis(host="127.0.0.1", port=node.port) as client:
                while client.cluster("info").get("cluster_state") != "ok":
                    if time.monotonic() > deadline:
                        raise TimeoutError("the Redis Cluster did not reach cluster_state:ok")
                    time.sleep(0.05)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> EmbeddedRedisCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def redis_or_embedded(url: str | None, data_dir: str | os.PathLike[str], layout: str = KATO
                      ) -> tuple[redis.Redis, EmbeddedRedis | None]:
    """A client for ``url``; without one, start an embedded redis-server under ``data_dir/redis``, configured for
    the deployment's Redis ``layout``.

    The caller owns the returned ``EmbeddedRedis`` (stop it on shutdown).
    """
    embedded = None
    if not url:
        embedded = EmbeddedRedis(data_dir, listpack_entries=listpack_entries_for(layout))
        url = embedded.url
    return open_redis(url), embedded
