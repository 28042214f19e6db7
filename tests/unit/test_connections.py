"""The connection caps: per address first, then the global cap, where a waiting connection is evicted
(the flooder's own when it holds more than its share) before a new one is refused."""

from __future__ import annotations

import asyncio

import uvicorn
from uvicorn.server import ServerState

from sluicegate.server.connections import ConnectionGuard, ConnectionLimits
from sluicegate.server.protocol import GatewayHttpProtocol


class Conn:
    def __init__(self, address: str) -> None:
        self.address = address
        self.evicted = False

    def evict(self) -> None:
        self.evicted = True


def guard(total: int, per_address: int | None) -> ConnectionGuard:
    return ConnectionGuard(ConnectionLimits(10, 30, 120, 65, 60, total, per_address, 65536))


def test_an_address_is_refused_beyond_its_own_cap_and_others_are_not() -> None:
    limits = guard(100, 2)
    assert all(limits.admit(Conn("a"), "a") for _ in range(2))
    assert not limits.admit(Conn("a"), "a")
    assert limits.admit(Conn("b"), "b")
    assert limits.refused["per_address"] == 1 and limits.open == 3


def test_at_the_cap_a_flooder_evicts_its_own_oldest_and_a_light_client_gets_in() -> None:
    limits = guard(10, None)
    light = Conn("light")
    assert limits.admit(light, "light")
    limits.serving(light)  # it has a request being served
    flood = [Conn("flood") for _ in range(9)]
    for conn in flood:
        assert limits.admit(conn, "flood")
    newcomer = Conn("flood")
    assert limits.admit(newcomer, "flood")
    assert flood[0].evicted and not light.evicted  # the flooder's oldest made room
    limits.release(flood[0], "flood")
    other = Conn("other")
    assert limits.admit(other, "other")  # a light address takes the oldest waiting connection of all
    assert flood[1].evicted
    assert limits.closed["evicted"] == 2


def test_a_new_connection_is_refused_only_when_none_is_waiting() -> None:
    limits = guard(2, None)
    first, second = Conn("a"), Conn("b")
    for conn in (first, second):
        assert limits.admit(conn, conn.address)
        limits.serving(conn)
    assert not limits.admit(Conn("c"), "c")
    assert limits.refused["max_connections"] == 1
    limits.waiting(first, "a")  # its response went out: idle again, evictable
    assert limits.admit(Conn("c"), "c") and first.evicted


def test_the_cap_fits_the_file_limit() -> None:
    limits = guard(10_000, None)
    limits.fit_file_limit(4096)
    assert limits.max_connections == 4096 - 512
    limits.fit_file_limit(1_000_000)
    assert limits.max_connections == 4096 - 512  # never raised above what was configured or fitted


class Transport:
    """Enough of a socket transport for the protocol's connection handling."""

    def __init__(self) -> None:
        self.aborted = False
        self.closed = False

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("127.0.0.9", 5555) if name == "peername" else default

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def abort(self) -> None:
        self.aborted = True

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def _app(scope: object, receive: object, send: object) -> None:
    pass


def _protocol(limits: ConnectionGuard) -> tuple[GatewayHttpProtocol, Transport]:
    config = uvicorn.Config(app=_app, loop="asyncio", ws="none", lifespan="off", log_level="warning")
    config.load()
    protocol = GatewayHttpProtocol(config, ServerState(), {}, asyncio.get_running_loop(), guard=limits)
    transport = Transport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    return protocol, transport


async def test_a_client_that_stops_reading_the_answer_is_dropped_at_the_send_deadline() -> None:
    limits = ConnectionGuard(ConnectionLimits(10, 30, 120, 65, 0.05, 100, None, 65536))
    slow, slow_transport = _protocol(limits)
    quick, quick_transport = _protocol(limits)
    slow.pause_writing()  # its socket buffer is full
    quick.pause_writing()
    quick.resume_writing()  # it took some: the deadline starts again next time
    await asyncio.sleep(0.2)
    assert slow_transport.aborted and not quick_transport.aborted
    assert limits.closed["send_timeout"] == 1
    for protocol in (slow, quick):
        protocol.connection_lost(None)
    assert limits.open == 0
