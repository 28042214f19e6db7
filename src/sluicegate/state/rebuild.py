"""Budget balances rebuilt from the ledger: the hot counters are a cache of it. A balance the hot state has
not seen since it was (re)started or emptied is seeded with what the ledger says its scope spent in the
period before any request is admitted against it; until then budgets fail closed."""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from sluicegate.state.model import BudgetScope

log = logging.getLogger("sluicegate.state")


class SpendSource(Protocol):
    """What the ledger says a budget scope (`key:k1`, `team:t1`, `global`, ...) spent in a period."""

    async def spent(self, scope: BudgetScope) -> int: ...


class NothingSpent:
    """The source when no ledger is wired (tests of the hot state alone): every balance starts at zero."""

    async def spent(self, scope: BudgetScope) -> int:
        return 0


class RebuildPending(Exception):
    """The ledger could not be read in time: budgets fail closed until it can."""


class BudgetRebuild:
    """Reads a balance's spend from the ledger, once however many requests need it at the same time, and
    waits for it at most `timeout` seconds (the read goes on for the next request)."""

    def __init__(self, source: SpendSource, timeout: float = 5.0) -> None:
        self._source = source
        self._timeout = timeout
        self._pending: dict[tuple[str, str], asyncio.Task[int]] = {}

    async def spent(self, scope: BudgetScope) -> int:
        key = (scope.name, scope.period_id)
        task = self._pending.get(key)
        if task is None:
            task = self._pending[key] = asyncio.get_running_loop().create_task(self._source.spent(scope))

            def done(finished: asyncio.Task[int]) -> None:
                self._pending.pop(key, None)
                if not finished.cancelled():
                    finished.exception()  # reported below to whoever waited; nobody else must see it again

            task.add_done_callback(done)
        try:
            micros = await asyncio.wait_for(asyncio.shield(task), self._timeout)
        except Exception as exc:
            log.error(
                "budget %s (%s) cannot be rebuilt from the ledger (%s); its requests are refused until it can",
                scope.name,
                scope.period_id,
                type(exc).__name__,
            )
            raise RebuildPending(scope.name) from exc
        return micros
