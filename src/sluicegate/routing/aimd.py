"""Backpressure toward a throttling deployment: a concurrency limit with additive increase, multiplicative decrease."""

from __future__ import annotations

from collections.abc import Callable

Clock = Callable[[], float]


class ConcurrencyLimit:
    """In-flight calls to one deployment and how many it is allowed right now.

    A 429 or 529 halves the limit (at most once per `cooldown_s`, so one burst of throttles counts once);
    each success adds 1/limit, about one more slot per round of calls. Routing sends the excess elsewhere.
    """

    __slots__ = ("_clock", "_cooldown_s", "_last_decrease", "in_flight", "limit", "maximum")

    def __init__(self, maximum: int, clock: Clock, cooldown_s: float = 1.0) -> None:
        self.maximum = float(maximum)
        self.limit = float(maximum)
        self.in_flight = 0
        self._clock = clock
        self._cooldown_s = cooldown_s
        self._last_decrease = float("-inf")

    @property
    def saturated(self) -> bool:
        return self.in_flight >= int(self.limit)

    def on_success(self) -> None:
        if self.limit < self.maximum:
            self.limit = min(self.maximum, self.limit + 1.0 / self.limit)

    def on_throttle(self) -> None:
        now = self._clock()
        if now - self._last_decrease < self._cooldown_s:
            return
        self._last_decrease = now
        self.limit = max(1.0, self.limit / 2)
