"""Requests refused before anyone was authenticated: counted, and logged at a bounded rate per source address.

Anyone can send them, so they must cost no durable write each: the ledger skips them (no row, no spool
line) and the access log gets the first refusal from an address in each window as usual, then one summary
line per address for the rest of the window. At most `max_addresses` addresses are told apart per window;
the rest share the address "other", so a spoofing flood cannot make the summaries unbounded either.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sluicegate.pipeline.context import RequestContext

OTHER = "other"


def refused_anonymously(ctx: RequestContext) -> bool:
    """Refused before anyone was authenticated, and before any upstream call (the gateway's own calls, such
    as the model host's, have no principal either, and keep their rows)."""
    return ctx.principal is None and ctx.status >= 400 and not ctx.attempts and not ctx.side_attempts


class _Tally:
    __slots__ = ("count", "statuses")

    def __init__(self) -> None:
        self.count = 0  # refusals after the first, which was logged on its own
        self.statuses: dict[str, int] = {}


class AnonymousRefusals:
    """Per source address, in windows of `window_seconds`: which refusals get their own access line."""

    def __init__(
        self,
        window_seconds: float = 60.0,
        max_addresses: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._window = window_seconds
        self._max_addresses = max_addresses
        self._clock = clock
        self._ends: float | None = None
        self._tallies: dict[str, _Tally] = {}

    def note(self, address: str | None, status: int) -> bool:
        """Counts one refusal; True when it is to be logged on its own (its address's first in the window)."""
        if self._ends is None:
            self._ends = self._clock() + self._window
        name = address or "unknown"
        tally = self._tallies.get(name)
        if tally is None:
            if len(self._tallies) < self._max_addresses:
                self._tallies[name] = _Tally()
                return True
            tally = self._tallies.get(OTHER)
            if tally is None:
                tally = self._tallies[OTHER] = _Tally()
        tally.count += 1
        code = str(status)
        tally.statuses[code] = tally.statuses.get(code, 0) + 1
        return False

    def due(self, force: bool = False) -> list[dict[str, Any]]:
        """The summary lines of the window, once it has ended (or now, with `force`); a new window begins."""
        if self._ends is None or (not force and self._clock() < self._ends):
            return []
        summaries = [
            {
                "request_id": None,  # the line stands for many requests; readers keyed on it skip it
                "event": "anonymous_refusals",
                "address": name,
                "refused": tally.count,
                "statuses": tally.statuses,
                "window_seconds": self._window,
            }
            for name, tally in self._tallies.items()
            if tally.count
        ]
        self._tallies = {}
        self._ends = None
        return summaries
