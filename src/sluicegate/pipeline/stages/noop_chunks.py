"""A chunk stage that does nothing: what the `on_chunks` and `on_end` hooks cost (benchmarks, tests)."""

from __future__ import annotations

from sluicegate.canonical import ChatChunk
from sluicegate.pipeline.context import RequestContext
from sluicegate.pipeline.stages import Slot, StageServices

SLOT: Slot = "output"


class NoopChunks:
    name = "noop_chunks"
    edits_chunks = False

    def on_chunks(self, ctx: RequestContext, batch: list[ChatChunk]) -> list[ChatChunk]:
        return batch

    def on_end(self, ctx: RequestContext) -> list[ChatChunk]:
        return []


def create(services: StageServices) -> NoopChunks:
    return NoopChunks()
