"""A request body handed to blocking code as a file while it still arrives (streamed bulk loads).

The event loop feeds the chunks it receives into a bounded queue; the worker thread reads them as a file. If
the worker stops early (a bad line), the rest of the body is dropped instead of blocking the feeder.
"""

from __future__ import annotations

import asyncio
import io
import queue
from collections.abc import AsyncIterator
from typing import Any

_END = b""


class BodyPipe(io.RawIOBase):
    def __init__(self, depth: int = 64) -> None:
        super().__init__()
        self._chunks: queue.Queue[bytes] = queue.Queue(depth)
        self._pending = memoryview(b"")
        self._ended = False
        self.abandoned = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending and not self._ended:
            chunk = self._chunks.get()
            if chunk == _END:
                self._ended = True
            else:
                self._pending = memoryview(chunk)
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size

    def abandon(self) -> None:
        """The reader is done (finished or failed): what still arrives is dropped."""
        self.abandoned = True

    async def feed(self, chunks: AsyncIterator[bytes]) -> None:
        """Pass every chunk to the reader, then the end of the body."""
        async for chunk in chunks:
            if chunk and not await self._put(chunk):
                return
        await self._put(_END)

    async def _put(self, chunk: bytes) -> bool:
        while not self.abandoned:
            try:
                self._chunks.put_nowait(chunk)
                return True
            except queue.Full:
                await asyncio.sleep(0.002)
        return False
