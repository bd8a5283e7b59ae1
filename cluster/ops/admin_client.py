"""The CLI side of the admin endpoints: start a reshard and follow its progress until it ends."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import requests

from schema.errors import LauncherError

FINAL_PHASES = ("done", "failed")


def _headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def _answer(response: requests.Response) -> dict[str, Any]:
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        raise LauncherError(f"the service answered {response.status_code}: {detail}")
    return response.json()


def describe(progress: dict[str, Any]) -> str:
    """One line for a progress record (``GET /admin/reshard``'s ``progress``)."""
    phase = progress.get("phase", "?")
    if phase == "copying":
        return (f"copying shard {progress['src']} -> {progress['dst']}: {progress['buckets_done']}/"
                f"{progress['buckets']} buckets, {progress['rows_copied']:,} patterns, "
                f"{progress['bytes_copied'] / 1e6:.1f} MB moved")
    if phase == "catching up":
        return f"catching up: lag {progress['lag_rows']:,} rows ({progress['caught_up_rows']:,} carried over)"
    if phase in ("switched", "done"):
        pause = progress.get("write_pause_ms")
        extra = f", write pause {pause:.1f} ms" if isinstance(pause, (int, float)) else ""
        return f"{phase}: map version {progress.get('version')}{extra}"
    if phase == "failed":
        return f"failed: {progress.get('error')}"
    if phase == "aborted":
        return f"aborted: map back at version {progress.get('version')}"
    return phase


def reshard(url: str, shards: int, api_key: str | None = None, say: Callable[[str], None] = print,
            poll_seconds: float = 0.5, timeout: float = 3600.0) -> dict[str, Any]:
    """Start a reshard to ``shards`` and report each new phase until it is done; the last progress record."""
    with requests.Session() as http:
        http.headers.update(_headers(api_key))
        _answer(http.post(f"{url}/admin/reshard", json={"shards": shards}, timeout=30))
        deadline, last = time.monotonic() + timeout, ""
        while time.monotonic() < deadline:
            progress = _answer(http.get(f"{url}/admin/reshard", timeout=30))["progress"]
            line = describe(progress)
            if line != last:
                say(line)
                last = line
            if progress.get("phase") in FINAL_PHASES:
                if progress["phase"] == "failed":
                    raise LauncherError(f"the reshard failed: {progress.get('error')}")
                return progress
            time.sleep(poll_seconds)
    raise LauncherError(f"the reshard did not finish in {timeout:.0f} s (it goes on: see GET {url}/admin/reshard)")


def abort(url: str, api_key: str | None = None) -> dict[str, Any]:
    return _answer(requests.post(f"{url}/admin/reshard/abort", headers=_headers(api_key), timeout=60))
