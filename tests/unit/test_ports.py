"""Free ports from a range that neither the kernel's ephemeral ports nor Ray's own ports draw from."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

from cluster.ops.ports import PORT_RANGE, free_port, free_ports


def test_ports_are_distinct_bindable_and_outside_the_ephemeral_range():
    low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    ports = free_ports(6)
    assert len(set(ports)) == 6 and all(p in PORT_RANGE and not low <= p <= high for p in ports)
    for port in ports:
        with socket.socket() as server:
            server.bind(("0.0.0.0", port))


def test_a_port_held_on_any_interface_is_never_handed_out():
    holders = []
    try:
        for _ in range(50):
            holder = socket.socket()
            holder.bind(("127.0.0.1", free_port()))
            holder.listen()
            holders.append(holder)
        held = {h.getsockname()[1] for h in holders}
        assert len(held) == 50
        assert not held & set(free_ports(200))
    finally:
        for holder in holders:
            holder.close()


def test_ports_handed_out_are_not_handed_out_again_before_anyone_binds_them():
    """Two threads starting servers side by side (as a test starting two services does) get distinct ports,
    though none of them is bound yet."""
    picked: list[list[int]] = []

    def pick() -> None:
        picked.append([free_port() for _ in range(300)])

    threads = [threading.Thread(target=pick) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [port for ports in picked for port in ports]
    assert len(every) == 1200 and len(set(every)) == 1200
