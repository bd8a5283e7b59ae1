"""A private ``redis-server`` for single-machine mode and tests: AOF on, fsync always, no RDB snapshots."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from cluster.ops.ports import free_port
from cluster.stores.engines import open_redis
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
                 start_timeout: float = 10.0, executable: str | None = None) -> None:
        self.data_dir = Path(data_dir) / "redis"
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
            "--protected-mode", "yes", "--logfile", str(self.data_dir / "redis.log"),
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


def redis_or_embedded(url: str | None, data_dir: str | os.PathLike[str]) -> tuple[redis.Redis, EmbeddedRedis | None]:
    """A client for ``url``; without one, start an embedded redis-server under ``data_dir/redis``.

    The caller owns the returned ``EmbeddedRedis`` (stop it on shutdown).
    """
    embedded = None
    if not url:
        embedded = EmbeddedRedis(data_dir)
        url = embedded.url
    return open_redis(url), embedded
