"""A TCP proxy on loopback that cuts the gateway off from one of its own dependencies (the database, Redis):
the simulator's fault injection for what sits beside the providers. Tests and benchmarks drive it.

Three modes: `forward` (bytes pass both ways), `blackhole` (connections are accepted and never answered, so
every call waits for its client's timeout: the worst case) and `refuse` (the port is closed: connections are
refused at once). Every switch drops the connections already open, as a network cut would. The proxy runs
on an event loop in a thread of its own, so a synchronous test can use it beside blocking calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any, Literal

Mode = Literal["forward", "blackhole", "refuse"]


class TcpProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self._target = (target_host, target_port)
        self.mode: Mode = "forward"
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="tcp-proxy")
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0  # chosen at the first start, then kept: a cut and a return use the same port

    def start(self) -> TcpProxy:
        self._thread.start()
        self._call(self._set("forward"))
        return self

    def set(self, mode: Mode) -> None:
        self._call(self._set(mode))

    def open(self) -> None:
        self.set("forward")

    def close(self) -> None:
        """Refuses connections and drops every one open."""
        self.set("refuse")

    def stop(self) -> None:
        if self._thread.is_alive():
            self.close()
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)

    def _call(self, coro: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    async def _set(self, mode: Mode) -> None:
        self.mode = mode
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        if mode == "refuse":
            if self._server is not None:
                self._server.close()
                await self._server.wait_closed()
                self._server = None
        elif self._server is None:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)
            self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        if self.mode == "blackhole":
            with contextlib.suppress(Exception):
                await reader.read()  # never answers; the client's own timeout ends it
            self._writers.discard(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            self._writers.discard(writer)
            return
        self._writers.add(up_writer)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(Exception):
                dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers.discard(writer)
        self._writers.discard(up_writer)
