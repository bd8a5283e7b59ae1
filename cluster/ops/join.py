"""Add this machine to a running cluster: ``kato-cluster up --join ADDRESS``.

The cluster is one whose head was started by ``ray start --head`` (``ray_config.yaml``'s head, or by hand) and
serves the app (``serve deploy serve_config.yaml``); ``kato-cluster up`` alone is one machine on loopback and
cannot be joined. Joining does what ``ray_config.yaml``'s ``worker_start_ray_commands`` do: Serve's ingress set
up as on every node (HAProxy's wrapper), then ``ray start --address=ADDRESS --block``. The node then takes
Serve's replicas as they scale, the shards a reshard adds (``actors.ray_shard.placements``: the node holding
the fewest first) and those restarted after a node was lost. Stopped (Ctrl-C, SIGTERM, ``kato-cluster down``),
it leaves: Ray stops its processes and restarts its shards on the other nodes, where they reload their ranges.

Shards on this node use the engines the cluster's service was given, so this machine must reach that Redis and
ClickHouse; ``--redis``/``--store`` given here are checked before joining.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from cluster.ops.launcher import (
    LOG_FILE,
    check_engines,
    check_ingress,
    claim_data_dir,
    prepare_ingress,
    remove_ingress,
    running_pid,
    spawn_detached,
    stop_on_signals,
)
from schema.errors import LauncherError
from schema.settings import Settings

JOINED_FILE = "ray-node"  # written once Ray runs on this node: the address joined
JOINED_LINE = "Ray runtime started"  # what ``ray start`` prints once the node is up


def parse_address(address: str) -> tuple[str, int]:
    """``HOST:PORT`` of a Ray head (its GCS, port 6379 in ``ray_config.yaml``), checked."""
    host, sep, port = address.strip().rpartition(":")
    if not sep or not host or any(c.isspace() for c in host) or not port.isdigit() or not 0 < int(port) < 65536:
        raise LauncherError(f"--join takes the Ray head's HOST:PORT (for example 10.0.0.5:6379), not {address!r}")
    return host.strip("[]"), int(port)


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail in one line when nothing accepts connections at the head's address (``ray start`` would retry for
    minutes)."""
    host, port = parse_address(address)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as error:
        raise LauncherError(f"no Ray head answers at {address} ({error.strerror or error}): give the head's "
                            "HOST:PORT, the port of `ray start --head --port` (6379 in ray_config.yaml)") from error


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def join_command(address: str) -> list[str]:
    """The ``ray start`` that joins ``address``. A head on this machine's loopback is joined from loopback too
    (Ray would otherwise announce this node under the machine's address)."""
    host, _ = parse_address(address)
    command = [str(Path(sys.executable).with_name("ray")), "start", f"--address={address.strip()}", "--block",
               "--disable-usage-stats"]
    if is_loopback_host(host):
        command.append("--node-ip-address=127.0.0.1")
    return command


def run_join(settings: Settings, address: str, on_ready: Callable[[str], None] = print) -> int:
    """Join and stay joined until SIGINT/SIGTERM; returns ``ray start``'s exit code. Ray's output is passed on."""
    command = join_command(address)
    check_reachable(address)
    check_ingress(settings)
    check_engines(settings)
    pid_path = claim_data_dir(settings.data_dir, "a process")
    joined_path = Path(settings.data_dir) / JOINED_FILE
    stop = threading.Event()
    stop_on_signals(stop)
    ingress_dir = tempfile.mkdtemp(prefix="kato-ingress-")
    try:
        prepare_ingress(settings, ingress_dir)
        ray = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               text=True, env=os.environ.copy())
        threading.Thread(target=_pass_on, args=(ray, address, joined_path, on_ready), daemon=True).start()
        while ray.poll() is None and not stop.wait(0.5):
            pass
        return _leave(ray)
    finally:
        with contextlib.suppress(FileNotFoundError):
            joined_path.unlink()
        with contextlib.suppress(FileNotFoundError):
            pid_path.unlink()
        remove_ingress(settings, ingress_dir)


def _pass_on(ray: subprocess.Popen, address: str, joined_path: Path, on_ready: Callable[[str], None]) -> None:
    """Ray's output line by line; at the line that says the node runs, the joined file and ``on_ready``."""
    assert ray.stdout is not None
    for line in ray.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        if JOINED_LINE in line and not joined_path.exists():
            joined_path.write_text(address)
            on_ready(f"this machine joined the Ray cluster at {address}; stop it with Ctrl-C or "
                     f"`kato-cluster down --data-dir {joined_path.parent}`")


def _leave(ray: subprocess.Popen, grace: float = 60.0) -> int:
    """Stop ``ray start`` (SIGTERM: it stops the node's processes, and the cluster drops the node)."""
    if ray.poll() is None:
        ray.send_signal(signal.SIGTERM)
        try:
            ray.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            ray.kill()
            ray.wait()
    return ray.returncode


def start_joined_detached(settings: Settings, address: str, timeout: float = 120.0) -> subprocess.Popen:
    """``kato-cluster up --join ADDRESS`` in the background; returns once this node runs in the cluster."""
    check_reachable(address)  # a malformed or dead address fails here, not in the background
    check_ingress(settings)
    os.makedirs(settings.data_dir, exist_ok=True)
    if (pid := running_pid(settings.data_dir)) is not None:
        raise LauncherError(f"a process (pid {pid}) already owns {settings.data_dir}")
    joined = Path(settings.data_dir) / JOINED_FILE
    with contextlib.suppress(FileNotFoundError):
        joined.unlink()  # left by a node that was killed
    process = spawn_detached(settings, ["--join", address.strip()])
    deadline = time.monotonic() + timeout
    while not joined.exists():
        if process.poll() is not None:
            raise LauncherError(f"joining {address} failed (exit code {process.returncode}); see "
                                f"{Path(settings.data_dir) / LOG_FILE}")
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            raise LauncherError(f"this machine did not join {address} within {timeout:.0f} s")
        time.sleep(0.3)
    return process
