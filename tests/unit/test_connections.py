"""The connection caps: per address first, then the global cap, where a waiting connection is evicted
(the flooder's own when it holds more than its share) before a new one is refused."""

from __future__ import annotations

from sluicegate.server.connections import ConnectionGuard, ConnectionLimits


class Conn:
    def __init__(self, address: str) -> None:
        self.address = address
        self.evicted = False

    def evict(self) -> None:
        self.evicted = True


def guard(total: int, per_address: int | None) -> ConnectionGuard:
    return ConnectionGuard(ConnectionLimits(10, 30, 120, 65, total, per_address, 65536))


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
