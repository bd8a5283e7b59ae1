"""Free TCP ports for the servers the service starts (embedded Redis, HAProxy's side ports, Serve's fallback
proxy, benchmark services).

Asking the kernel for port 0 hands out a port from its ephemeral range, where every outgoing connection and
every Ray process binding port 0 also draws: between the probe and the server's own bind, another process
can take it (HAProxy then failed to start in a CI run). These ports come from a range nobody else draws
from here: above Ray's worker ports (10002-19999), below Serve's direct-ingress ports (30000-31000) and the
kernel's ephemeral range (Linux: 32768 and up), and free on every interface. A process does not hand out a
port again within ``REUSE_AFTER_SECONDS``, so two servers it starts side by side cannot be given one port
before either binds it.
"""

from __future__ import annotations

import random
import socket
import threading
import time

PORT_RANGE = range(20000, 30000)
REUSE_AFTER_SECONDS = 600.0

_handed_out: dict[int, float] = {}
_lock = threading.Lock()


def free_ports(count: int, host: str = "0.0.0.0") -> list[int]:
    """``count`` distinct ports of ``PORT_RANGE`` that no socket holds on ``host`` (all interfaces by default)."""
    start = random.randrange(len(PORT_RANGE))
    found: list[int] = []
    with _lock:
        now = time.monotonic()
        for port in [p for p, at in _handed_out.items() if now - at > REUSE_AFTER_SECONDS]:
            del _handed_out[port]
        for k in range(len(PORT_RANGE)):
            port = PORT_RANGE[(start + k) % len(PORT_RANGE)]
            if port in _handed_out:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                try:
                    probe.bind((host, port))
                except OSError:
                    continue
            found.append(port)
            if len(found) == count:
                _handed_out.update(dict.fromkeys(found, now))
                return found
    raise OSError(f"fewer than {count} free ports in {PORT_RANGE.start}-{PORT_RANGE.stop - 1}")


def free_port(host: str = "0.0.0.0") -> int:
    return free_ports(1, host)[0]
