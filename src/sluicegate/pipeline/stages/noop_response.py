"""A response stage that does nothing: what the `on_response` hook costs (benchmarks, tests)."""

from __future__ import annotations

from sluicegate.pipeline.context import RequestContext
from sluicegate.pipeline.runner import Answer
from sluicegate.pipeline.stages import Slot, StageServices

SLOT: Slot = "output"


class NoopResponse:
    name = "noop_response"

    async def on_response(self, ctx: RequestContext, response: Answer) -> Answer:
        return response


def create(services: StageServices) -> NoopResponse:
    return NoopResponse()
