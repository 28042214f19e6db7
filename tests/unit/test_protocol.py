"""Holding a response's head back until its body: never reordered, never held past the event loop's turn."""

from __future__ import annotations

import asyncio
from typing import Any

from sluicegate.server.protocol import _CoalescingTransport


class Wire:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else None


async def test_head_and_body_leave_in_one_write() -> None:
    wire = Wire()
    transport = _CoalescingTransport(wire, asyncio.get_running_loop())  # type: ignore[arg-type]
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    transport.write(b"body")
    transport.write(b"more")
    await asyncio.sleep(0)
    assert wire.writes == [b"HTTP/1.1 200 OK\r\n\r\nbody", b"more"]


async def test_a_head_without_a_body_in_the_same_turn_goes_out_alone() -> None:
    wire = Wire()
    transport = _CoalescingTransport(wire, asyncio.get_running_loop())  # type: ignore[arg-type]
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    assert wire.writes == []
    await asyncio.sleep(0)  # the end of the turn: a slow first event must not hold the headers
    assert wire.writes == [b"HTTP/1.1 200 OK\r\n\r\n"]
    transport.write(b"data: 1\n\n")
    assert wire.writes[-1] == b"data: 1\n\n"


async def test_interim_responses_pass_and_close_flushes_the_head() -> None:
    wire = Wire()
    transport = _CoalescingTransport(wire, asyncio.get_running_loop())  # type: ignore[arg-type]
    transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert wire.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    transport.write(b"HTTP/1.1 500 Internal Server Error\r\n\r\n")
    transport.close()
    assert wire.writes[-1].startswith(b"HTTP/1.1 500") and wire.closed
    assert transport.get_extra_info("peername") == ("127.0.0.1", 1)  # everything else is the real transport's
