"""A finish stage that does nothing: what the `on_finish` hook costs (benchmarks, tests)."""

from __future__ import annotations

from sluicegate.pipeline.context import RequestContext
from sluicegate.pipeline.stages import Slot, StageServices

SLOT: Slot = "record"


class NoopFinish:
    name = "noop_finish"

    async def on_finish(self, ctx: RequestContext) -> None:
        return None


def create(services: StageServices) -> NoopFinish:
    return NoopFinish()
