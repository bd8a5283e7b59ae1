"""The machine and software a run measured: CPU, cores, memory, versions, git commit."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from typing import Any

PACKAGES = ("ray", "numpy", "rapidfuzz", "datasketch", "chdb", "redis", "pyarrow", "numba")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _git_commit(root: str) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def environment(root: str) -> dict[str, Any]:
    """A description of this machine and of the installed versions that matter for the figures."""
    return {"cpu_model": _cpu_model(), "cores": os.cpu_count(), "memory_bytes": _memory_bytes(),
            "platform": platform.platform(), "python": platform.python_version(),
            "versions": {name: _version(name) for name in PACKAGES}, "git_commit": _git_commit(root)}
