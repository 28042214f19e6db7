"""Optional stages, one module each, named in the `pipeline.stages` configuration.

A stage module defines `SLOT` (where the stage sits on the request path: "request", before admission;
"output", after the meter; "record", after the record stage) and `create(services) -> stage`. Only the
modules a configuration names are imported (`build`), so a stage that is off costs nothing.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from sluicegate.catalog import ModelCatalog
from sluicegate.clock import Clock, SystemClock
from sluicegate.config.schema import STAGES_PACKAGE, GatewayConfig
from sluicegate.events import EventBus, StageVerdict
from sluicegate.pipeline.context import RequestContext

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from sluicegate.models.host import ModelHost

Slot = Literal["request", "output", "record"]


@dataclass(frozen=True, slots=True)
class StageServices:
    """What the gateway hands a stage when it builds it."""

    config: GatewayConfig
    events: EventBus  # for verdicts and anything else a stage announces
    # The model host, when configured: a stage that needs a model asks it for a handle when it is built
    # (`model_host.embedder(fail=..., deadline_ms=...)`), which is what makes the host start.
    model_host: ModelHost | None = None
    catalog: ModelCatalog | None = None  # the model groups and their deployments
    registry: CollectorRegistry | None = None  # where a stage's metrics are scraped from (/metrics)
    clock: Clock = field(default_factory=SystemClock)
    # Counts a request answered locally against its scopes' requests-per-minute limits (a 429 over them)
    count_request: Callable[[RequestContext], Awaitable[None]] | None = None

    def verdict(self, ctx: RequestContext, stage: str, verdict: str, detail: str = "") -> StageVerdict:
        """Records what a stage decided about a request on its context (the access log renders it) and
        announces it on the event bus (audit, alerts)."""
        record = StageVerdict(ctx.request_id, stage, verdict, detail)
        ctx.verdicts += (record,)
        self.events.publish(record)
        return record


def build(names: list[str], services: StageServices) -> dict[Slot, list[object]]:
    """The configured stages, constructed, grouped by slot, in their configured order."""
    slots: dict[Slot, list[object]] = {"request": [], "output": [], "record": []}
    for name in names:
        module = importlib.import_module(f"{STAGES_PACKAGE}.{name}")
        slots[module.SLOT].append(module.create(services))
    return slots
