"""uvicorn's httptools protocol, with each response's head and first body bytes leaving in one write.

uvicorn writes the status line and headers as soon as the app sends `http.response.start`, then the body
with a second write: two `send` syscalls (and two wake-ups of the client) for every whole response. On
loopback and on real networks alike a send is one of the dearest things the gateway does per request, so
the head is held back until the body follows. The body is sent in the same turn of the event loop for
whole responses and for streams whose first event is already there; if it is not, the head goes out alone
at the end of that turn, so a client never waits for headers longer than it would have.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_CONTINUE = b"HTTP/1.1 100 "


class _CoalescingTransport:
    """Stands in for the connection's transport in one request/response cycle."""

    __slots__ = ("_head", "_loop", "_real")

    def __init__(self, real: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._real = real
        self._loop = loop
        self._head: bytes | None = b""  # b"": the head has not been written yet; None: it has gone out

    def write(self, data: bytes) -> None:
        head = self._head
        if head is None:
            self._real.write(data)
        elif head:  # the body that the held head was waiting for
            self._head = None
            self._real.write(head + data)
        elif data.startswith(_CONTINUE):  # an interim response is not the head
            self._real.write(data)
        else:
            self._head = data
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        head = self._head
        if head:
            self._head = None
            self._real.write(head)

    def close(self) -> None:
        self.flush()
        self._real.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle.transport is self.transport:
            cycle.transport = _CoalescingTransport(self.transport, self.loop)  # type: ignore[assignment]
