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
"""

from __future__ import annotations

from cluster.ops.ports import free_ports

INGRESS_MODES = ("haproxy", "proxy")
HAPROXY_DRAIN_SECONDS = 2  # a single-node HAProxy is reconfigured within ~0.1 s of a replica leaving


def check_ingress_mode(mode: str) -> str:
    if mode not in INGRESS_MODES:
        raise ValueError(f"ingress must be one of {', '.join(INGRESS_MODES)}; got {mode!r}")
    return mode


def ingress_environment(mode: str, work_dir: str) -> dict[str, str]:
    """The ``RAY_SERVE_*`` variables for ``mode``; HAProxy keeps its config and sockets in ``work_dir``
    (short: a Unix socket path is limited to 107 bytes)."""
    if check_ingress_mode(mode) == "proxy":
        return {"RAY_SERVE_ENABLE_HA_PROXY": "0"}
    stats, metrics, fallback_http, fallback_grpc = free_ports(4)
    return {
        "RAY_SERVE_ENABLE_HA_PROXY": "1",
        "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": f"{work_dir}/haproxy.cfg",
        "RAY_SERVE_HAPROXY_SOCKET_PATH": f"{work_dir}/admin.sock",
        "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH": f"{work_dir}/metrics.sock",
        "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": work_dir,
        "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": f"{work_dir}/server-state",
        "RAY_SERVE_HAPROXY_STATS_PORT": str(stats),
        "RAY_SERVE_HAPROXY_METRICS_PORT": str(metrics),
        "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT": str(fallback_http),
        "RAY_SERVE_FALLBACK_PROXY_GRPC_PORT": str(fallback_grpc),
        "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": str(HAPROXY_DRAIN_SECONDS),
    }
