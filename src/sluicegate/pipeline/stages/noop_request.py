"""A request stage that does nothing: what the `on_request` hook costs (benchmarks, tests)."""

from __future__ import annotations

from sluicegate.pipeline.context import RequestContext
from sluicegate.pipeline.stages import Slot, StageServices

SLOT: Slot = "request"


class NoopRequest:
    name = "noop_request"

    async def on_request(self, ctx: RequestContext) -> None:
        return None


def create(services: StageServices) -> NoopRequest:
    return NoopRequest()
