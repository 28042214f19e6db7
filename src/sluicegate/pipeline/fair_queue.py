"""The admission queue: requests over a rate limit (or waiting for budget reservations in flight to settle)
wait here, bounded, and retry one at a time in order
of priority and then by weighted fair queuing between tenants (start-time fair queuing), so one
tenant's burst cannot starve the others."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from dataclasses import dataclass, field


class QueueFull(Exception):
    pass


@dataclass(order=True, slots=True)
class _Waiter:
    rank: int  # minus the priority: higher priority first
    tag: float  # virtual finish time of its tenant
    seq: int
    turn: asyncio.Future[None] = field(compare=False)


class FairQueue:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._ready: list[_Waiter] = []
        self._finish: dict[str, float] = {}  # tenant -> virtual finish time of its last waiter
        self._virtual = 0.0
        self._seq = itertools.count()
        self._waiting = 0
        self._busy = False

    @property
    def waiting(self) -> int:
        return self._waiting

    async def wait(
        self, tenant: str, priority: int, delay: float, weight: float = 1.0, wake: asyncio.Event | None = None
    ) -> None:
        """Sleeps `delay` (less if `wake` is set first), then waits for this request's turn to retry.
        Call `done()` after retrying."""
        if self._waiting >= self.capacity:
            raise QueueFull
        self._waiting += 1
        try:
            if wake is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), delay)
            elif delay > 0:
                await asyncio.sleep(delay)
            tag = max(self._virtual, self._finish.get(tenant, 0.0)) + 1.0 / weight
            self._finish[tenant] = tag
            turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            heapq.heappush(self._ready, _Waiter(-priority, tag, next(self._seq), turn))
            self._dispatch()
            try:
                await turn
            except asyncio.CancelledError:
                if turn.done() and not turn.cancelled():
                    self.done()  # it was its turn: hand the turn on
                raise
        finally:
            self._waiting -= 1
            if len(self._finish) > 4 * max(self.capacity, 1):
                self._finish = {t: v for t, v in self._finish.items() if v > self._virtual}

    def done(self) -> None:
        self._busy = False
        self._dispatch()

    def _dispatch(self) -> None:
        while not self._busy and self._ready:
            waiter = heapq.heappop(self._ready)
            if waiter.turn.done():  # cancelled while ready
                continue
            self._virtual = max(self._virtual, waiter.tag)
            self._busy = True
            waiter.turn.set_result(None)
