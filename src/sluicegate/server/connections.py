"""Who may hold a connection to the gateway, and for how long: the caps, the deadlines and their counters.

uvicorn bounds only the wait between two requests on a kept-alive connection (`timeout_keep_alive`); its
`limit_concurrency` answers 503 once the headers have arrived, so sockets that never send a byte, headers
fed one byte at a time and bodies that never end were bounded by nothing but the process's file limit.
The protocol (`protocol.py`) asks this object whether a new connection may stay, arms the deadlines it
states, and reports each refusal and each close it caused here, where `/metrics` reads them.

At the global cap, a new connection first evicts a connection that has no request being served on it
(idle, or still sending its headers): the oldest of its own address's if that address holds more than its
fair share of the cap (the cap over the addresses connected), the oldest of all otherwise. A flood from a
few addresses then costs the flooders their own oldest sockets, never a light client its connection. Only
when no connection is waiting is the new one refused.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger("sluicegate.server")

REFUSALS = ("max_connections", "per_address")
CLOSES = ("evicted", "header_timeout", "body_timeout", "send_timeout", "headers_too_large", "malformed")


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """Seconds and counts; see `ServerConfig` for what each one is and its default."""

    header_timeout: float
    body_idle_timeout: float
    body_timeout: float
    keep_alive: int
    send_timeout: float
    max_connections: int
    max_connections_per_address: int | None
    max_header_bytes: int


class Evictable(Protocol):
    def evict(self) -> None: ...


class ConnectionGuard:
    """Counts the open connections (in total and per client address) and decides who may open one more.

    Used from the event loop's thread only (protocol callbacks), so it needs no lock."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.max_connections = limits.max_connections  # lowered to fit the file limit at start-up
        self.open = 0
        self._per_address: dict[str | None, int] = {}
        # Connections with no request being served, oldest first: all of them, and per address.
        self._waiting: OrderedDict[Evictable, str | None] = OrderedDict()
        self._waiting_at: dict[str | None, OrderedDict[Evictable, None]] = {}
        self.refused = dict.fromkeys(REFUSALS, 0)
        self.closed = dict.fromkeys(CLOSES, 0)

    def fit_file_limit(self, file_limit: int) -> None:
        """Keeps the cap below the process's file limit, with room for upstream, database and spool files."""
        room = file_limit - max(256, file_limit // 8)
        if room < self.max_connections:
            log.warning(
                "server.max_connections lowered from %d to %d to fit the open-file limit (%d)",
                self.max_connections,
                max(room, 16),
                file_limit,
            )
            self.max_connections = max(room, 16)

    def admit(self, connection: Evictable, address: str | None) -> bool:
        """Whether a new connection from `address` may stay; if it may, it is counted (and `release`d later)."""
        per_address = self.limits.max_connections_per_address
        held = self._per_address.get(address, 0)
        if per_address is not None and address is not None and held >= per_address:
            self.refused["per_address"] += 1
            return False
        if self.open >= self.max_connections:
            victim = self._victim(address, held)
            if victim is None:
                self.refused["max_connections"] += 1
                return False
            self.serving(victim)
            self.closed["evicted"] += 1
            victim.evict()  # it stays counted until its connection is lost
        self.open += 1
        self._per_address[address] = held + 1
        self.waiting(connection, address)
        return True

    def _victim(self, address: str | None, held: int) -> Evictable | None:
        own = self._waiting_at.get(address)
        if own and held * len(self._per_address) >= self.open:  # at or above its fair share: its own oldest
            return next(iter(own))
        return next(iter(self._waiting), None)

    def release(self, connection: Evictable, address: str | None) -> None:
        self.open -= 1
        self.serving(connection)
        left = self._per_address.get(address, 1) - 1
        if left:
            self._per_address[address] = left
        else:
            self._per_address.pop(address, None)

    def serving(self, connection: Evictable) -> None:
        """A request's headers have arrived: the connection is no longer a candidate for eviction."""
        if connection in self._waiting:
            address = self._waiting.pop(connection)
            own = self._waiting_at[address]
            del own[connection]
            if not own:
                del self._waiting_at[address]

    def waiting(self, connection: Evictable, address: str | None) -> None:
        """The connection has no request being served (new, or its last response went out): evictable."""
        self._waiting[connection] = address
        own = self._waiting_at.get(address)
        if own is None:
            own = self._waiting_at[address] = OrderedDict()
        own[connection] = None

    def families(self) -> Iterator[Metric]:
        refused = CounterMetricFamily(
            "sluicegate_connections_refused",
            "Connections closed as soon as they were accepted, by reason (max_connections, per_address).",
            labels=("reason",),
        )
        for reason, count in self.refused.items():
            refused.add_metric((reason,), count)
        closed = CounterMetricFamily(
            "sluicegate_connections_closed",
            "Connections the gateway closed itself: evicted at the cap, a header, body or send deadline missed, "
            "headers too large, or bytes that are not HTTP.",
            labels=("reason",),
        )
        for reason, count in self.closed.items():
            closed.add_metric((reason,), count)
        gauge = GaugeMetricFamily("sluicegate_connections_open", "Client connections open now.")
        gauge.add_metric((), self.open)
        yield from (refused, closed, gauge)


class ConnectionCollector(Collector):
    def __init__(self, guard: ConnectionGuard) -> None:
        self._guard = guard

    def collect(self) -> Iterator[Metric]:
        return self._guard.families()
