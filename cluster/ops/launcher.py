"""Start and stop a whole service: engines, a local Ray cluster, the shard actors and the Serve app.

``run_service`` blocks until SIGINT/SIGTERM and then stops everything it started; ``start_detached`` runs it
in a background process that owns the data directory (pid file ``kato.pid``), ``stop_detached`` ends it.

Only the API listens beyond loopback, and only when ``--host`` is not a loopback address. The service is one
machine (its embedded Redis and chdb cannot be shared), so its Ray cluster is a loopback node (GCS, raylet,
workers, agents), the embedded Redis binds 127.0.0.1, Serve's replicas and fallback proxy bind loopback, and
HAProxy's frontend alone binds ``--host`` (``cluster.ops.ingress``; its statistics and Prometheus pages are off
unless ``haproxy_stats`` / ``haproxy_metrics`` ask for them).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

from cluster.ops.ingress import (
    HAPROXY_BINARY_VAR,
    REPLICA_GRPC_HOOK,
    HAProxyBinds,
    check_ingress_mode,
    ingress_environment,
    is_loopback,
    serve_http_host,
    write_haproxy_wrapper,
)
from cluster.stores.pattern_layout import claim_layout, layout_for
from schema.errors import LauncherError
from schema.settings import Settings

PID_FILE = "kato.pid"
LOG_FILE = "kato.log"
WRAPPER_FILE = "haproxy-wrapper"  # only where the ingress directory may not run programs
# Ray's switch for a single-node cluster (its default on macOS and Windows): the node's address is 127.0.0.1
# instead of the machine's, and Ray's gRPC servers (GCS, raylet, core workers), the dashboard agent, its metrics
# port and the runtime-env agent then bind loopback. ``ray.init(_node_ip_address="127.0.0.1")`` is not enough:
# Ray replaces a loopback address with the machine's. Read when ``ray`` is imported, so set before that.
RAY_LOOPBACK_ENVIRONMENT = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_pid(data_dir: str) -> int | None:
    path = Path(data_dir) / PID_FILE
    if not path.exists():
        return None
    try:
        pid = int(path.read_text().strip())
    except ValueError:
        return None
    return pid if _pid_alive(pid) else None


def project_root() -> str:
    return str(Path(__file__).resolve().parents[2])


def stop_on_signals(stop: threading.Event) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())


def start_ray(namespace: str, stop: threading.Event) -> None:
    """``ray.init`` with our stop handlers kept. Ray replaces the Python SIGTERM handler with one raising
    ``SystemExit`` wherever the main thread is (one landing in Ray's native callbacks was swallowed there: the
    stop was lost and the service ran on), so it may not while it starts; and its core worker installs a
    native handler that ends the process without clean-up, so ours go back on afterwards."""
    import ray
    import ray._private.utils as ray_utils

    replace = ray_utils.set_sigterm_handler
    ray_utils.set_sigterm_handler = lambda _handler: None
    try:
        # address="local": always a new cluster of our own, whatever RAY_ADDRESS says.
        ray.init(address="local", num_cpus=max(2, os.cpu_count() or 2), include_dashboard=False,
                 namespace=namespace, log_to_driver=False, configure_logging=False,
                 runtime_env={"env_vars": {"PYTHONPATH": project_root()},
                              "worker_process_setup_hook": REPLICA_GRPC_HOOK})
    finally:
        ray_utils.set_sigterm_handler = replace
    stop_on_signals(stop)
    if not is_loopback(node := ray.util.get_node_ip_address()):
        raise LauncherError(f"Ray's node address is {node}, not loopback: was `ray` imported before the launcher "
                            f"set {', '.join(RAY_LOOPBACK_ENVIRONMENT)}?")


def prepare_ingress(settings: Settings, work_dir: str) -> None:
    """Serve's ingress variables in this process's environment (inherited by Ray's processes) and, for HAProxy,
    the wrapper that binds its frontend to ``settings.host`` and its pages only where asked: in ``work_dir``,
    or in the data directory where that one may not run programs (a ``noexec`` /tmp)."""
    env = ingress_environment(settings.ingress, work_dir)
    if HAPROXY_BINARY_VAR in env:
        for path in (env[HAPROXY_BINARY_VAR], os.path.join(settings.data_dir, WRAPPER_FILE)):
            write_haproxy_wrapper(path, haproxy_binds(settings))
            if os.access(path, os.X_OK):
                env[HAPROXY_BINARY_VAR] = path
                break
            os.unlink(path)
        else:
            raise LauncherError(f"cannot run HAProxy's wrapper from {work_dir} nor {settings.data_dir} (noexec?)")
    os.environ.update(env)


def remove_ingress(settings: Settings, work_dir: str) -> None:
    """Undo ``prepare_ingress``: its work directory and the wrapper it may have left in the data directory."""
    shutil.rmtree(work_dir, ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(settings.data_dir, WRAPPER_FILE))


def claim_data_dir(data_dir: str, owner: str) -> Path:
    """Make ``data_dir`` this process's (its pid file), unless a live process owns it; the pid file's path."""
    os.makedirs(data_dir, exist_ok=True)
    if (pid := running_pid(data_dir)) is not None and pid != os.getpid():
        raise LauncherError(f"{owner} (pid {pid}) already owns {data_dir}; run `kato-cluster down` first")
    pid_path = Path(data_dir) / PID_FILE
    pid_path.write_text(str(os.getpid()))
    return pid_path


def haproxy_binds(settings: Settings) -> HAProxyBinds:
    return HAProxyBinds(api_host=settings.host, stats=settings.haproxy_stats,
                        metrics=settings.haproxy_metrics)


def run_service(settings: Settings, on_ready=print) -> None:
    """Run until interrupted. Ctrl-C or SIGTERM stops the Serve app, the shards, Ray and embedded Redis."""
    check_ingress(settings)
    layout_for(settings.redis_layout)  # an unknown layout is refused before anything starts
    check_port_free(settings.host, settings.port)
    check_engines(settings)
    os.environ.update(RAY_LOOPBACK_ENVIRONMENT)
    import ray
    from ray import serve

    from cluster.ops.embedded_redis import redis_or_embedded
    from cluster.stores.key_space import hash_tag
    from cluster.stores.shard_map import ShardMapStore
    from serve_app.deployment import ingress_application, open_shards, reshard_to

    pid_path = claim_data_dir(settings.data_dir, "a service")
    stop = threading.Event()
    stop_on_signals(stop)  # a stop during start-up is honoured once started, with the usual clean-up
    client, embedded, shards = None, None, None
    ingress_dir = tempfile.mkdtemp(prefix="kato-ingress-")
    try:
        client, embedded = redis_or_embedded(settings.redis, settings.data_dir, settings.redis_layout)
        redis_url = embedded.url if embedded is not None else str(settings.redis)
        claim_layout(client, settings.redis_layout, hash_tag(client))  # refused before Ray starts, not in a replica
        if embedded is not None:
            embedded.supervise()  # a Redis that dies comes back on the same port, from its AOF
        prepare_ingress(settings, ingress_dir)
        try:
            start_ray(settings.namespace, stop)
            # Detached: Serve replicas run in another job and can only look up detached named actors.
            maps = ShardMapStore(client, settings.namespace)
            shards, saved = open_shards(settings, redis_url, maps)
            if len(saved.ranges) != settings.shards or saved.target is not None:
                on_ready(f"the data was saved with {len(saved.ranges)} shards: resharding to {settings.shards} "
                         "before serving")
                reshard_to(settings, shards, maps, _reshard_progress(on_ready))
            serve.start(http_options={"host": serve_http_host(settings.ingress, settings.host), "port": settings.port})
            serve.run(ingress_application(settings, redis_url), name="kato", route_prefix="/")
        except SystemExit:  # a stop Ray turned into an exit while it started: clean up as after ours
            stop.set()
        if not stop.is_set():
            on_ready(f"kato-cluster is serving on http://{settings.host}:{settings.port} "
                     f"({settings.shards} shards, data in {settings.data_dir})")
        while not stop.wait(0.5):
            pass
    finally:
        if ray.is_initialized():  # else serve.shutdown() would start a Ray instance only to find nothing
            with contextlib.suppress(Exception):
                serve.shutdown()
            for handle in shards.handles.values() if shards is not None else ():
                with contextlib.suppress(Exception):
                    ray.kill(handle, no_restart=True)
            with contextlib.suppress(Exception):
                ray.shutdown()
        if client is not None:
            client.close()
        if embedded is not None:
            embedded.stop()
        remove_ingress(settings, ingress_dir)
        with contextlib.suppress(FileNotFoundError):
            pid_path.unlink()


def _reshard_progress(say):
    def progress(phase: str, figures: dict) -> None:
        if phase in ("switched", "done"):
            say(f"reshard {phase}: " + ", ".join(f"{k} {v}" for k, v in figures.items() if k != "moves"))
    return progress


def check_ingress(settings: Settings) -> None:
    try:
        check_ingress_mode(settings.ingress)
        haproxy_binds(settings).checked()
    except ValueError as error:
        raise LauncherError(str(error)) from error


def check_port_free(host: str, port: int) -> None:
    """Fail fast when another process listens on the service's port: the readiness check would otherwise be
    answered by that process."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind: TIME_WAIT is no conflict
        try:
            probe.bind((host, port))
        except OSError as error:
            raise LauncherError(f"port {port} on {host} is already in use ({error.strerror})") from error


def check_engines(settings: Settings) -> None:
    """Fail fast, in one line, when a configured ClickHouse server or Redis cannot be reached."""
    import redis

    from cluster.stores.clickhouse import open_pattern_store
    from cluster.stores.redis_client import connect
    from schema.errors import StoreUnavailable

    if settings.store and not settings.store.startswith("chdb:"):
        driver_log = logging.getLogger("clickhouse_connect")
        level = driver_log.level
        driver_log.setLevel(logging.CRITICAL)  # the one-line error below says it all
        try:
            open_pattern_store(settings.store).close()
        except StoreUnavailable as error:
            raise LauncherError(str(error)) from error
        finally:
            driver_log.setLevel(level)
    if settings.redis:
        try:
            connect(settings.redis, socket_connect_timeout=3).ping()
        except redis.RedisError as error:
            raise LauncherError(f"Redis at {settings.redis} is unreachable: {error}") from error


def wait_healthy(url: str, timeout: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise LauncherError(f"the service exited with code {process.returncode}; see its log")
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{url}/health", timeout=2).status_code == 200:
                return
        time.sleep(0.5)
    raise LauncherError(f"the service did not answer {url}/health within {timeout:.0f} s")


def start_detached(settings: Settings, timeout: float = 180.0) -> subprocess.Popen:
    """Start ``kato-cluster up`` in the background, return once it answers ``/health``."""
    check_ingress(settings)
    os.makedirs(settings.data_dir, exist_ok=True)
    if (pid := running_pid(settings.data_dir)) is not None:
        raise LauncherError(f"a service (pid {pid}) already owns {settings.data_dir}")
    check_port_free(settings.host, settings.port)
    process = spawn_detached(settings, ["--port", str(settings.port), "--host", settings.host,
                                        "--shards", str(settings.shards)])
    try:
        wait_healthy(f"http://{settings.host}:{settings.port}", timeout, process)
    except LauncherError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        raise
    return process


def spawn_detached(settings: Settings, options: list[str]) -> subprocess.Popen:
    """``kato-cluster up`` with ``options`` (and the data directory, ingress and engines of ``settings``) in a
    process of its own session, its output appended to the data directory's log."""
    args = [sys.executable, "-m", "cluster.ops.cli", "up", "--data-dir", settings.data_dir,
            "--ingress", settings.ingress, "--redis-layout", settings.redis_layout, *options]
    if settings.store:
        args += ["--store", settings.store]
    if settings.redis:
        args += ["--redis", settings.redis]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [project_root(), os.environ.get("PYTHONPATH")]))}
    log = open(Path(settings.data_dir) / LOG_FILE, "ab")  # noqa: SIM115 - handed to the child process
    process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               start_new_session=True, env=env)
    log.close()
    return process


def stop_detached(data_dir: str, timeout: float = 90.0) -> int:
    """SIGTERM the service that owns ``data_dir`` and wait for it to finish; returns its pid."""
    pid = running_pid(os.path.abspath(data_dir))
    if pid is None:
        raise LauncherError(f"no running service owns {os.path.abspath(data_dir)}")
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _pid_alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            break
        time.sleep(0.2)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
    return pid
