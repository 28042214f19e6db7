"""The gateway's one clock: wall time (budget periods, windows, key expiry, the ledger's timestamps) and
monotonic time (breakers, latency, deadlines), given out by `Gateway` so that tests can move it."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Wall-clock seconds since the epoch."""

    def monotonic(self) -> float:
        """Seconds that only ever grow, for durations."""


class SystemClock:
    __slots__ = ()

    # the functions themselves, not Python functions calling them: read about ten times a request
    now = staticmethod(time.time)
    monotonic = staticmethod(time.monotonic)


class ManualClock:
    """A clock that moves only when told to (tests: window edges, period resets, expiry, breaker timers)."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._monotonic = 1000.0

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._monotonic

    def advance(self, seconds: float) -> None:
        self._now += seconds
        self._monotonic += seconds

    def set(self, when: float) -> None:
        """Sets the wall clock only (monotonic time cannot go back)."""
        self._now = when
