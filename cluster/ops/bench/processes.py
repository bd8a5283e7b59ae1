"""This machine's processes from ``/proc`` (Linux), for the benchmarks that measure or end a process tree."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Process:
    parent: int
    cpu_seconds: float  # user + system
    args: str  # the command line, "" unless asked for


def processes(with_args: bool = False) -> dict[int, Process]:
    """Every process still there by the time it is read (one that ends meanwhile is left out)."""
    tick = os.sysconf("SC_CLK_TCK")
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            args = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace") if with_args else ""
        except OSError:
            continue
        table[int(entry.name)] = Process(int(fields[1]), (int(fields[11]) + int(fields[12])) / tick, args)
    return table


def with_descendants(roots: Iterable[int], table: dict[int, Process]) -> set[int]:
    """``roots`` and every process below them."""
    children: dict[int, list[int]] = {}
    for pid, process in table.items():
        children.setdefault(process.parent, []).append(pid)
    found, todo = set(), list(roots)
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, []))
    return found
