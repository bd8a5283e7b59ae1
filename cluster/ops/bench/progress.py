"""Progress display: a rich progress bar on a terminal, plain lines on stderr otherwise (CI, pipes)."""

from __future__ import annotations

import sys
import time
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn


class Steps:
    """``with Steps(total) as steps: steps.start("ingest"); ...`` — one step per phase."""

    def __init__(self, total: int, force_plain: bool = False):
        self.total = total
        self.done = 0
        self.console = Console(stderr=True)
        self.plain = force_plain or not self.console.is_terminal
        self.progress: Progress | None = None
        self.task: TaskID = TaskID(0)
        self.t0 = time.monotonic()

    def __enter__(self) -> Steps:
        if not self.plain:
            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), console=self.console)
            self.progress.start()
            self.task = self.progress.add_task("bench", total=self.total)
        return self

    def start(self, description: str) -> None:
        """Mark the previous step done and announce the next one."""
        if self.progress is not None:
            if self.done:
                self.progress.advance(self.task)
            self.progress.update(self.task, description=description)
        else:
            print(f"[{self.done + 1}/{self.total} {time.monotonic() - self.t0:6.1f}s] {description}",
                  file=sys.stderr, flush=True)
        self.done += 1

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.progress is not None:
            if exc is None:
                self.progress.update(self.task, completed=self.total, description="done")
            self.progress.stop()
