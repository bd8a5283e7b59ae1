"""Nothing the service starts listens beyond what the user asked (``kato-cluster up``, README "Deployment").

Each case starts a whole service through the launcher, then lists the listening TCP sockets and the unconnected
UDP sockets (which take datagrams from anyone) of every process it started: the launcher's process tree (Ray's
GCS, raylet, agents and workers, Serve's actors and HAProxy descend from its ``ray.init``) and, should one be
re-parented, every process of the session the launcher leads. With ``--host 127.0.0.1`` (the default) each of
them is bound to loopback; with ``--host 0.0.0.0`` only the KATO API port, served by HAProxy, is not.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ipaddress
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from cluster.ops.launcher import running_pid, start_detached, stop_detached
from cluster.ops.ports import free_port
from schema.errors import LauncherError
from schema.settings import Settings

pytestmark = [pytest.mark.slow]

_TCP_LISTEN, _UDP_UNCONNECTED = "0A", "07"


@dataclass(frozen=True)
class Listener:
    process: str
    pid: int
    protocol: str
    address: str
    port: int

    @property
    def loopback(self) -> bool:
        ip = ipaddress.ip_address(self.address)
        mapped = getattr(ip, "ipv4_mapped", None)  # ::ffff:127.0.0.1 (a dual-stack socket bound to 127.0.0.1)
        return (mapped or ip).is_loopback

    def __str__(self) -> str:
        return f"{self.process}[{self.pid}] {self.protocol} {self.address}:{self.port}"


def _proc_address(hex_address: str, family: int) -> tuple[str, int]:
    host, port = hex_address.split(":")
    raw = bytes.fromhex(host)  # 32-bit words, each printed in the host's byte order
    words = [raw[i:i + 4] for i in range(0, len(raw), 4)]
    packed = b"".join(w[::-1] if sys.byteorder == "little" else w for w in words)
    return socket.inet_ntop(family, packed), int(port, 16)


def _bound_sockets() -> dict[str, tuple[str, str, int]]:
    """Socket inode -> (protocol, address, port) for every listening TCP and unconnected UDP socket."""
    found = {}
    for table, family, state in (("tcp", socket.AF_INET, _TCP_LISTEN), ("tcp6", socket.AF_INET6, _TCP_LISTEN),
                                 ("udp", socket.AF_INET, _UDP_UNCONNECTED),
                                 ("udp6", socket.AF_INET6, _UDP_UNCONNECTED)):
        with open(f"/proc/net/{table}") as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                if fields[3] == state:
                    found[fields[9]] = (table, *_proc_address(fields[1], family))
    return found


def _parents_and_sessions() -> tuple[dict[int, int], dict[int, int]]:
    parents, sessions = {}, {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                parents[int(entry.name)], sessions[int(entry.name)] = int(stat[1]), int(stat[3])
    return parents, sessions


def service_processes(launcher: int) -> set[int]:
    """The launcher, its descendants and the processes of the session it leads (``start_new_session``)."""
    parents, sessions = _parents_and_sessions()
    found = {launcher} | {pid for pid, sid in sessions.items() if sid == launcher}
    grew = True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in found} - found
        found |= more
        grew = bool(more)
    return found


def listeners(pids: set[int]) -> set[Listener]:
    bound = _bound_sockets()
    out = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            name = Path(f"/proc/{pid}/comm").read_text().strip()
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    link = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if link.startswith("socket:[") and link[8:-1] in bound:
                        out.add(Listener(name, pid, *bound[link[8:-1]]))
    return out


def _stop(data_dir: str, process) -> None:
    """Stop the service, then end (by pid) any process of its session still running: nothing may outlive it."""
    if running_pid(data_dir) is not None:
        stop_detached(data_dir)
    with contextlib.suppress(Exception):
        process.wait(timeout=30)
    deadline = time.monotonic() + 20
    while (left := service_processes(process.pid) - {process.pid}) and time.monotonic() < deadline:
        time.sleep(0.5)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _start(tmp_path: Path, host: str, attempts: int = 3):
    """The other service, starting alongside, picks its Redis and HAProxy ports in its own process: it can take
    this one's port before this one binds it. That is a clash of the two starts, not a fault: pick another."""
    settings = Settings.from_env({}, data_dir=str(tmp_path / host), port=free_port(), host=host, shards=2)
    try:
        return settings, start_detached(settings, timeout=240)
    except LauncherError as error:
        if "already in use" not in str(error) or attempts == 1:
            raise
        return _start(tmp_path, host, attempts - 1)


def _look(settings: Settings, process) -> set[Listener]:
    url = f"http://127.0.0.1:{settings.port}"
    assert requests.get(f"{url}/health", timeout=10).status_code == 200
    assert requests.get(f"{url}/", timeout=10).json()["service"] == "KATO API"
    # Two looks a few seconds apart: a worker or a HAProxy reload after the first answer is counted too.
    seen = listeners(service_processes(process.pid))
    time.sleep(3)
    return seen | listeners(service_processes(process.pid))


@pytest.fixture(scope="module")
def services(tmp_path_factory) -> Iterator[dict[str, tuple[Settings, set[Listener]]]]:
    """Both services at once (each start is mostly waiting): ``--host 127.0.0.1`` and ``--host 0.0.0.0``."""
    tmp_path = tmp_path_factory.mktemp("listening")
    hosts = ("127.0.0.1", "0.0.0.0")
    with concurrent.futures.ThreadPoolExecutor(len(hosts)) as pool:
        starts = {host: pool.submit(_start, tmp_path, host) for host in hosts}
        concurrent.futures.wait(starts.values())
        started = {host: future.result() for host, future in starts.items() if future.exception() is None}
        try:
            for future in starts.values():
                future.result()  # a start that failed fails every test here, once the others are stopped
            yield {host: (settings, _look(settings, process)) for host, (settings, process) in started.items()}
        finally:
            list(pool.map(lambda item: _stop(item[0].data_dir, item[1]), started.values()))


def test_a_loopback_service_listens_on_loopback_only(services):
    _, seen = services["127.0.0.1"]
    names = {listener.process for listener in seen}
    # The check saw the service's processes, not an empty list: Redis, Ray, Serve and HAProxy.
    assert {"redis-server", "gcs_server", "raylet", "haproxy"} <= names, names
    assert any(n.startswith("ray::ServeRepli") for n in names), names
    exposed = sorted(map(str, (listener for listener in seen if not listener.loopback)))
    assert not exposed, "listening beyond loopback:\n" + "\n".join(exposed)


def test_an_all_interfaces_service_exposes_only_the_api_port(services):
    """README "Deployment": with ``--host 0.0.0.0`` the KATO API port (HAProxy) is the only one beyond loopback."""
    settings, seen = services["0.0.0.0"]
    exposed = {(listener.process, listener.protocol, listener.port) for listener in seen if not listener.loopback}
    assert exposed == {("haproxy", "tcp", settings.port)}, sorted(map(str, seen))
    assert len({listener.process for listener in seen}) > 5  # Ray's and Serve's processes were looked at
