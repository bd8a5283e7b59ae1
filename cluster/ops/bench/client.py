"""The few KATO HTTP calls the benchmark makes (``requests``; one ``Session`` per caller)."""

from __future__ import annotations

import time
from typing import Any

import requests

PATTERN_PREFIX = "PTRN|"
BULK_BATCH = 5000


def bare(name: str) -> str:
    """A pattern name without KATO's ``PTRN|`` prefix."""
    return name[len(PATTERN_PREFIX):] if name.startswith(PATTERN_PREFIX) else name


def bulk_learn(http: requests.Session, url: str, node: str, patterns: list[list[list[str]]],
               batch: int = BULK_BATCH) -> tuple[float, list[str]]:
    """Learn ``patterns`` through ``/bulk/learn`` in batches; (seconds, bare names in corpus order)."""
    names: list[str] = []
    start = time.perf_counter()
    for lo in range(0, len(patterns), batch):
        body: dict[str, Any] = {"node_id": node, "patterns": [{"events": p} for p in patterns[lo:lo + batch]]}
        response = http.post(f"{url}/bulk/learn", json=body, timeout=900)
        response.raise_for_status()
        names.extend(map(bare, response.json()["pattern_names"]))
    return time.perf_counter() - start, names


def status_shards(http: requests.Session, url: str) -> list[dict[str, Any]]:
    """Every shard's entry of ``/status``."""
    response = http.get(f"{url}/status", timeout=60)
    response.raise_for_status()
    return response.json()["processors"]["processors"]


def totals_of(shards: list[dict[str, Any]]) -> tuple[int, int]:
    """(patterns over every KB, index bytes) summed over these ``/status`` shard entries."""
    return (sum(sum(s["patterns_per_kb"].values()) for s in shards), sum(int(s["index_bytes"]) for s in shards))


def shard_totals(http: requests.Session, url: str) -> tuple[int, int]:
    return totals_of(status_shards(http, url))


def shard_count(http: requests.Session, url: str) -> int:
    return len(status_shards(http, url))


class KatoSession:
    """One KATO session over HTTP."""

    def __init__(self, http: requests.Session, url: str, node: str, config: dict[str, Any]):
        self.http = http
        response = http.post(f"{url}/sessions", json={"node_id": node, "config": config}, timeout=60)
        response.raise_for_status()
        self.base = f"{url}/sessions/{response.json()['session_id']}"

    def clear(self) -> None:
        self.http.post(f"{self.base}/clear-stm", timeout=60).raise_for_status()

    def observe(self, event: list[str]) -> float:
        """Observe one event; its latency in seconds."""
        t0 = time.perf_counter()
        self.http.post(f"{self.base}/observe", json={"strings": event}, timeout=600).raise_for_status()
        return time.perf_counter() - t0

    def observe_sequence(self, events: list[list[str]]) -> None:
        body = {"observations": [{"strings": e} for e in events]}
        self.http.post(f"{self.base}/observe-sequence", json=body, timeout=600).raise_for_status()

    def predictions(self) -> tuple[float, dict[str, Any]]:
        """(latency in seconds, response body) of ``GET /predictions``."""
        t0 = time.perf_counter()
        response = self.http.get(f"{self.base}/predictions", timeout=600)
        elapsed = time.perf_counter() - t0
        response.raise_for_status()
        return elapsed, response.json()

    def learn(self) -> float:
        t0 = time.perf_counter()
        self.http.post(f"{self.base}/learn", timeout=600).raise_for_status()
        return time.perf_counter() - t0

    def update_config(self, config: dict[str, Any]) -> None:
        self.http.post(f"{self.base}/config", json=config, timeout=60).raise_for_status()
