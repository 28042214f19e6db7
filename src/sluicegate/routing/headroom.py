"""Headroom under each deployment's upstream RPM/TPM, read from the shared rate-limit state for `usage` routing.

The rate limiter counts every instance's calls per deployment (in Redis when configured); reading that per
request would be a round trip per deployment, so a background task refreshes it about once a second and the
`usage` strategy reads the last value (falling back to this instance's own count when it is stale).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from sluicegate.routing.health import DeploymentHealth
from sluicegate.routing.router import Router

log = logging.getLogger("sluicegate.routing")


class Room(Protocol):
    """What is left in the current window (None: no such limit); `sluicegate.state.model.Headroom` is one."""

    @property
    def requests(self) -> int | None: ...

    @property
    def tokens(self) -> int | None: ...


HeadroomReader = Callable[[str, int | None, int | None], Awaitable[Room]]


def share_left(room: Room, rpm: int | None, tpm: int | None) -> float:
    """The smallest share left under the limits, 0..1."""
    share = 1.0
    if rpm and room.requests is not None:
        share = min(share, room.requests / rpm)
    if tpm and room.tokens is not None:
        share = min(share, room.tokens / tpm)
    return max(0.0, min(1.0, share))


class HeadroomRefresher:
    def __init__(self, router: Router, read: HeadroomReader, interval_s: float = 1.0) -> None:
        self._router = router
        self._read = read
        self._interval = interval_s
        usage_groups = [g for g in router.catalog if g.routing.strategy == "usage"]
        names = {d.name for g in usage_groups for d in g.deployments if d.rpm or d.tpm}
        self._targets: list[DeploymentHealth] = [router.health[n] for n in sorted(names)]
        self._task: asyncio.Task[None] | None = None

    async def refresh(self) -> None:
        for health in self._targets:
            d = health.deployment
            try:
                room = await asyncio.wait_for(self._read(d.name, d.rpm, d.tpm), 1.0)
            except Exception as exc:  # the shared state is away: routing uses this instance's own counts
                log.debug("headroom of %s unavailable (%s)", d.name, type(exc).__name__)
                continue
            health.shared_headroom = share_left(room, d.rpm, d.tpm)
            health.shared_headroom_at = self._router.clock()

    async def _run(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(self._interval)

    async def start(self) -> None:
        if self._targets and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
