"""The access log: one JSON line per request, never prompt or completion text, written off the hot path."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any, BinaryIO

import orjson

_FLUSH_INTERVAL = 0.25
_FLUSH_LINES = 512


class AccessLog:
    """Buffers lines in memory and writes them in batches from a background task.

    A full buffer is written at once, so memory stays bounded whatever the request rate.
    """

    def __init__(self, stream: BinaryIO | None) -> None:
        self._stream = stream
        self._lines: list[bytes] = []
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def open(cls, path: str, enabled: bool = True) -> AccessLog:
        if not enabled:
            return cls(None)
        if path == "-":
            return cls(os.fdopen(os.dup(1), "wb"))
        folder = os.path.dirname(path)
        if folder:
            os.makedirs(folder, exist_ok=True)
        return cls(open(path, "ab"))

    def write(self, entry: dict[str, Any]) -> None:
        if self._stream is None:
            return
        entry["ts"] = round(time.time(), 3)
        self._lines.append(orjson.dumps(entry) + b"\n")
        if len(self._lines) >= _FLUSH_LINES:
            self.flush()

    def flush(self) -> None:
        if not self._lines or self._stream is None:
            return
        lines, self._lines = self._lines, []
        self._stream.write(b"".join(lines))
        self._stream.flush()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(_FLUSH_INTERVAL)
            self.flush()

    def start(self) -> None:
        if self._stream is not None and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        self.flush()
        if self._stream is not None:
            self._stream.close()
            self._stream = None
