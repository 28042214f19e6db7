"""Raw-ASGI plumbing: reading a request body, sending a whole response, noticing a client disconnect."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

JSON_CONTENT = (b"content-type", b"application/json")
SSE_CONTENT = (b"content-type", b"text/event-stream; charset=utf-8")


async def read_body(receive: Receive) -> bytes:
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        return body  # the common case: one message, no copying
    parts = [body]
    while message.get("more_body", False):
        message = await receive()
        parts.append(message.get("body", b""))
    return b"".join(parts)


async def send_response(send: Send, status: int, body: bytes, headers: Headers | None = None) -> None:
    head = [JSON_CONTENT, (b"content-length", str(len(body)).encode())]
    if headers:
        head.extend(headers)
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


class DisconnectWatch:
    """Learns, concurrently, when the client goes away, so waits and streams stop promptly.

    The watching task is created on first use: a request answered without waiting never pays for it.
    """

    __slots__ = ("_receive", "_task")

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._task: asyncio.Task[None] | None = None

    def _watch(self) -> asyncio.Task[None]:
        if self._task is None:
            self._task = asyncio.ensure_future(self._wait_for_disconnect())
        return self._task

    async def _wait_for_disconnect(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass

    @property
    def disconnected(self) -> bool:
        return self._task is not None and self._task.done()

    async def sleep(self, seconds: float) -> bool:
        """Wait `seconds`, or less if the client leaves first; True when it left."""
        task = self._watch()
        if seconds > 0 and not task.done():
            await asyncio.wait((task,), timeout=seconds)
        return task.done()

    async def until_disconnect(self) -> None:
        await self._watch()

    def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()


class Rejected(Exception):
    """Raised by a handler to answer at once with an error status and an already-shaped body."""

    def __init__(self, status: int, body: bytes, headers: Headers | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers
