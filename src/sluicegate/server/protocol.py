"""uvicorn's httptools protocol, with each response's head and first body bytes leaving in one write, and
(`GatewayHttpProtocol`) held to the connection caps and deadlines of `connections.py`.

uvicorn writes the status line and headers as soon as the app sends `http.response.start`, then the body
with a second write: two `send` syscalls (and two wake-ups of the client) for every whole response. On
loopback and on real networks alike a send is one of the dearest things the gateway does per request, so
the head is held back until the body follows. The body is sent in the same turn of the event loop for
whole responses and for streams whose first event is already there; if it is not, the head goes out alone
at the end of that turn, so a client never waits for headers longer than it would have.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import httptools
from uvicorn._types import ASGISendEvent
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState

from sluicegate.errors import GatewayError
from sluicegate.server.connections import ConnectionGuard
from sluicegate.wire import anthropic as anthropic_wire
from sluicegate.wire import openai as openai_wire

_CONTINUE = b"HTTP/1.1 100 "
_LINGER_SECONDS = 2.0


class _CoalescingTransport:
    """Stands in for the connection's transport in one request/response cycle."""

    __slots__ = ("_head", "_loop", "_real", "closer")

    def __init__(self, real: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._real = real
        self._loop = loop
        self._head: bytes | None = b""  # b"": the head has not been written yet; None: it has gone out
        self.closer: Callable[[], None] | None = None  # how the connection is closed, if not at once

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
        if self.closer is not None:
            self.closer()
        else:
            self._real.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle.transport is self.transport:
            cycle.transport = _CoalescingTransport(self.transport, self.loop)  # type: ignore[assignment]


class _HeadersTooLarge(Exception):
    pass


class _Cycle(RequestResponseCycle):
    """uvicorn's request/response cycle, except that a response started before its request body was read
    to the end closes the connection (lingering, see `GatewayHttpProtocol._linger`): otherwise a body that
    never ends would keep it open for ever."""

    async def send(self, message: ASGISendEvent) -> None:
        if not self.response_started and self.more_body and message["type"] == "http.response.start":
            self.keep_alive = False
        await super().send(message)


def _refusal(status: int, message: str, code: str, path: str | None = None) -> bytes:
    """A whole response the protocol writes itself (the application never saw the request), closing."""
    error = GatewayError(status, message, code=code)
    body = (
        anthropic_wire.error_body(error) if path and path.startswith("/v1/messages") else openai_wire.error_body(error)
    )
    return (
        b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
        % (status, HTTPStatus(status).phrase.encode(), len(body))
    ) + body


class GatewayHttpProtocol(CoalescingHttpToolsProtocol):
    """The gateway's protocol: the coalescing one, held to `ConnectionGuard`'s caps and deadlines.

    One timer per connection at most: from accept (or a kept-alive connection's first new byte) until the
    headers are complete, the header deadline; then, while the body is read, the body deadline (idle and
    total, checked lazily so a steady body costs no timer churn). A missed header deadline closes the
    connection without a word (no request was made); a missed body deadline answers 408 in the client's
    format. Neither logs: both are counted (`ConnectionGuard.closed`)."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        guard: ConnectionGuard,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._guard = guard
        self._limits = guard.limits
        self._address: str | None = None
        self._admitted = False
        self._timer: asyncio.TimerHandle | None = None
        self._write_timer: asyncio.TimerHandle | None = None  # while the client does not read the answer
        self._idle = False  # between requests on a kept-alive connection (uvicorn's keep-alive timer runs)
        self._headers_since: float | None = None  # a kept-alive connection's next request began (loop time)
        self._header_bytes = 0
        self._oversized = False
        self._reading_body = False
        self._body_started = 0.0
        self._body_seen = 0.0
        self._lingering = False  # answered and shut for writing; reading what still comes until closed

    # -- the connection ------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._address = self.client[0] if self.client else None
        if not self._guard.admit(self, self._address):
            transport.close()
            return
        self._admitted = True
        self._arm(self._limits.header_timeout, self._header_expired)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None
        if self._admitted:
            self._admitted = False
            self._guard.release(self, self._address)
        super().connection_lost(exc)

    def pause_writing(self) -> None:
        """The client has stopped taking the answer (its socket buffer is full): it has `send_timeout` to
        take some more, or the connection is dropped, and with it the request it holds."""
        super().pause_writing()
        if self._write_timer is None:
            self._write_timer = self.loop.call_later(self._limits.send_timeout, self._send_expired)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None

    def _send_expired(self) -> None:
        self._write_timer = None
        self._disarm()
        self._guard.closed["send_timeout"] += 1
        self.transport.abort()  # a close would wait to flush what the client does not read

    def evict(self) -> None:
        """Closed to make room at the cap (`ConnectionGuard.admit`); it had no request being served."""
        self._disarm()
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        if not self._admitted or self._lingering:
            return
        self._unset_keepalive_if_required()
        if self._idle:  # a kept-alive connection's next request begins: its headers are on the clock
            self._idle = False
            self._header_bytes = 0
            self._headers_since = self.loop.time()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            pass  # nothing here upgrades (no WebSocket): the request is served as plain HTTP
        except httptools.HttpParserError:
            if self._oversized:
                self._close(
                    "headers_too_large", _refusal(431, "The request's headers are too large.", "headers_too_large")
                )
            else:
                self._close("malformed", _refusal(400, "The request is not valid HTTP/1.1.", "invalid_http"))
            return
        # A deadline is armed only for what this read left unfinished: a request that arrives whole in one
        # read (nearly all of them) costs no timer at all.
        if self._timer is None:
            if self._headers_since is not None:
                remaining = self._headers_since + self._limits.header_timeout - self.loop.time()
                self._arm(max(remaining, 0.0), self._header_expired)
            elif self._reading_body:
                self._arm_body_check()

    # -- the parser's callbacks ----------------------------------------------------------------------

    # on_url and on_header are uvicorn's, with the size check: called once per header of every request, so
    # written out rather than through super() and a helper (three Python calls a header).
    def on_url(self, url: bytes) -> None:
        size = self._header_bytes = self._header_bytes + len(url)
        if size > self._limits.max_header_bytes:
            self._too_large()
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        size = self._header_bytes = self._header_bytes + len(name) + len(value) + 4
        if size > self._limits.max_header_bytes:
            self._too_large()
        name = name.lower()
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_100_continue = True
        self.headers.append((name, value))

    def _too_large(self) -> None:
        self._oversized = True
        raise _HeadersTooLarge  # the parser stops and reports an error (`data_received`)

    def on_headers_complete(self) -> None:
        self._disarm()
        self._headers_since = None
        self._header_bytes = 0
        self._guard.serving(self)
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is None:
            return
        cycle.__class__ = _Cycle
        if isinstance(cycle.transport, _CoalescingTransport):
            cycle.transport.closer = functools.partial(self._close_after_response, cycle)
        if not (self.pipeline and self.pipeline[0][0] is cycle):  # served now, not queued behind another
            self._start_body_clock()

    def on_body(self, body: bytes) -> None:
        self._body_seen = self.loop.time()
        super().on_body(body)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        if self._reading_body:
            self._reading_body = False
            self._disarm()

    def on_response_complete(self) -> None:
        upcoming = self.pipeline[-1][0] if self.pipeline else None
        super().on_response_complete()
        if self.transport.is_closing():
            return
        if upcoming is not None:
            if upcoming.more_body:
                self._start_body_clock()
                self._arm_body_check()
        else:
            self._idle = True
            self._guard.waiting(self, self._address)

    # -- deadlines -----------------------------------------------------------------------------------

    def _arm(self, delay: float, callback: Callable[[], None]) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_later(delay, callback)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _start_body_clock(self) -> None:
        self._reading_body = True
        self._body_started = self._body_seen = self.loop.time()

    def _arm_body_check(self) -> None:
        limits = self._limits
        due = min(self._body_seen + limits.body_idle_timeout, self._body_started + limits.body_timeout)
        self._arm(max(due - self.loop.time(), 0.0), self._body_check)

    def _header_expired(self) -> None:
        self._timer = None
        self._close("header_timeout")

    def _body_check(self) -> None:
        self._timer = None
        if not self._reading_body:
            return
        idle_end = self._body_seen + self._limits.body_idle_timeout
        total_end = self._body_started + self._limits.body_timeout
        if self.loop.time() < min(idle_end, total_end):  # bytes came since: sleep until the next deadline
            self._timer = self.loop.call_at(min(idle_end, total_end), self._body_check)
            return
        self._reading_body = False
        cycle = self.cycle
        if cycle is None or cycle.response_started:
            self._close("body_timeout")
            return
        cycle.disconnected = True  # the application's read ends (http.disconnect) and its answer goes nowhere
        cycle.message_event.set()
        path = self.scope.get("path") if self.scope else None
        message = "The request body did not arrive in time."
        self._close("body_timeout", _refusal(408, message, "request_timeout", path))

    def _close(self, reason: str, response: bytes | None = None) -> None:
        self._disarm()
        self._guard.closed[reason] += 1
        if self.transport.is_closing():
            return
        if response is None:
            self.transport.close()
        else:
            self.transport.write(response)
            self._linger()

    def _close_after_response(self, cycle: RequestResponseCycle) -> None:
        if cycle.more_body:  # the client may still be sending the body the answer did not wait for
            self._linger()
        else:
            self.transport.close()

    def _linger(self) -> None:
        """Closes after the answer, without losing it: closing a socket whose client is still sending
        resets the connection, and a reset can discard the answer before the client reads it. So the
        gateway's side is shut for writing, and what still arrives is read and dropped for a moment
        (`_LINGER_SECONDS`), as nginx's lingering close does."""
        if self._lingering or self.transport.is_closing():
            return
        self._lingering = True
        self._reading_body = False
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._arm(_LINGER_SECONDS, self.transport.close)
