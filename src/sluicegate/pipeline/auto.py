"""The `auto` route: a request for a group with `strategy: auto` is classified and moved to the cheapest
group of its pool whose tier and capabilities cover it, before admission, so that budgets, rate limits,
allow-lists and data residency apply to the group actually used.

What was decided is kept on the context (`route_tier`, `task_type`, `complexity`, a `ModelChoice` and the
first route step) and rendered from there: `x-sluice-tier`, `x-sluice-classification`, the route reason
(`auto: code 0.72 -> balanced (gpt-4o); ...`), the ledger's columns and the metrics.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sluicegate.catalog import ModelCatalog, ModelGroup
from sluicegate.classify.classification import Classification, Classifier, Prompt
from sluicegate.classify.drift import DriftWatch
from sluicegate.classify.metrics import AutoMetrics
from sluicegate.errors import GatewayError
from sluicegate.pipeline.admission import permitted
from sluicegate.pipeline.context import RequestContext
from sluicegate.pipeline.decide import choose_group, facts_of
from sluicegate.pipeline.records import RouteStep
from sluicegate.routing.needs import MAX_LATENCY_HEADER

if TYPE_CHECKING:
    from sluicegate.pipeline.shadow import Shadow

CLASSIFICATION_HEADER = "x-sluice-classification"


@dataclass(frozen=True, slots=True)
class Member:
    """A group of an auto pool, with what choosing among them needs precomputed."""

    group: ModelGroup
    rank: int
    tier: str
    tasks: frozenset[str]
    high: float
    input_price: float  # USD per million tokens, the dearest deployment's (inf: unknown)
    output_price: float

    def cost(self, prompt_tokens: int, output_tokens: int) -> float:
        return prompt_tokens * self.input_price + output_tokens * self.output_price

    def can_serve(self, needs: frozenset[str], prompt_tokens: int) -> bool:
        """Some deployment offers what the request itself needs (undeclared capabilities count as offered)."""
        for d in self.group.deployments:
            if d.capabilities and not (needs - {"long_context"}) <= d.capabilities:
                continue
            if d.context_window is not None and prompt_tokens > d.context_window:
                continue
            return True
        return False


def member_of(group: ModelGroup) -> Member | None:
    """The group as an auto pool member (None: it has no tier, which the configuration check refuses)."""
    capability = group.capability
    if capability is None:
        return None
    prices = [d.price for d in group.deployments]
    known = [p for p in prices if p is not None]
    unknown = len(known) < len(prices) or not known
    return Member(
        group,
        capability.rank,
        capability.tier,
        capability.tasks,
        capability.high,
        math.inf if unknown else float(max(p.input for p in known)),
        math.inf if unknown else float(max(p.output for p in known)),
    )


def members_of(catalog: ModelCatalog, group: ModelGroup) -> list[Member]:
    members = []
    for name in group.pool:
        found = catalog.get(name)
        member = member_of(found) if found is not None else None
        if member is not None:
            members.append(member)
    return members


def choose(
    members: Sequence[Member], c: Classification, prompt_tokens: int, lower: bool = False
) -> tuple[Member, str] | None:
    """The cheapest member that serves the task at the classified complexity (else the most capable that
    serves the task, else the most capable); with `lower`, the cheapest of the tier below that choice.
    Returns (member, why) or None when there is no member at all."""
    able = [m for m in members if m.can_serve(c.needs, prompt_tokens)] or list(members)
    if not able:
        return None
    output = c.output_tokens

    def cheapest(candidates: Sequence[Member]) -> Member:
        return min(candidates, key=lambda m: (m.cost(prompt_tokens, output), m.rank, m.group.name))

    serving = [m for m in able if c.task in m.tasks]
    covering = [m for m in serving if c.complexity <= m.high]
    why = ""
    if covering:
        chosen = cheapest(covering)
    elif serving:
        top = max(m.high for m in serving)
        chosen = cheapest([m for m in serving if m.high == top])
        why = ", above every tier's range"
    else:
        top_rank = max(m.rank for m in able)
        chosen = cheapest([m for m in able if m.rank == top_rank])
        why = f", no model declares {c.task}"
    if lower:
        below = [m for m in (serving or able) if m.rank < chosen.rank]
        if below:
            rank = max(m.rank for m in below)
            chosen = cheapest([m for m in below if m.rank == rank])
            why += ", budget downgrade tier"
    return chosen, why


def prompt_of(ctx: RequestContext) -> Prompt:
    request = ctx.chat
    params = request.params
    raw = ctx.headers.get(MAX_LATENCY_HEADER)
    latency = None
    if raw:
        try:
            latency = float(raw)
        except ValueError:
            latency = None
    return Prompt(
        request.messages,
        tools=bool(params.get("tools") or params.get("functions")),
        stream=request.stream,
        max_latency_ms=latency,
        priority=facts_of(ctx).priority,
        max_tokens=request.max_tokens,
    )


def prompt_tokens_bound(prompt: Prompt) -> int:
    """About the prompt's tokens (4 characters a token), for ranking by cost: no tokenizer on this path."""
    size = 0
    for message in prompt.messages:
        content = message.get("content")
        if isinstance(content, str):
            size += len(content)
        elif isinstance(content, list):
            size += sum(len(str(p.get("text", ""))) for p in content if isinstance(p, dict))
    return size // 4 + 4 * len(prompt.messages)


class AutoRoute:
    name = "auto"

    def __init__(
        self,
        catalog: ModelCatalog,
        classifier: Classifier,
        metrics: AutoMetrics,
        downgrade_due: Callable[[RequestContext], bool] | None = None,
        drift: DriftWatch | None = None,
        shadow: Shadow | None = None,
    ) -> None:
        self._classifier = classifier
        self._drift = drift
        self.shadow = shadow
        self._metrics = metrics
        self._downgrade_due = downgrade_due
        self._pools = {g.name: members_of(catalog, g) for g in catalog if g.pool}

    async def on_request(self, ctx: RequestContext) -> None:
        group = ctx.group
        if group is None or not group.pool or ctx.endpoint != "chat":
            return
        members = [m for m in self._pools[group.name] if permitted(ctx.principal, m.group)]
        if not members:
            raise GatewayError(
                403,
                f"No model of the '{group.name}' pool is allowed for this API key (its model allow-list or its "
                "data-residency regions leave none).",
                type="permission_error",
                code="model_not_allowed",
                param="model",
            )
        prompt = prompt_of(ctx)
        began = time.perf_counter()
        classification = await self._classifier.classify(prompt)
        self._metrics.timed(self._classifier.name, time.perf_counter() - began)
        tokens = prompt_tokens_bound(prompt)
        lower = self._downgrade_due is not None and self._downgrade_due(ctx)
        found = choose(members, classification, tokens, lower)
        assert found is not None  # members is not empty
        member, why = found
        c = classification
        ctx.task_type = c.task
        ctx.complexity = c.complexity
        ctx.response_headers[CLASSIFICATION_HEADER] = c.header()
        text = f"auto: {c.task} {c.complexity:.2f} -> {member.tier} ({member.group.name}){why}"
        ctx.route = [RouteStep("auto", text)]
        ctx.route_tier = member.tier
        choose_group(ctx, member.group, "auto")  # sets x-sluice-tier
        self._metrics.decided(member.group.name, member.tier, c.task, c.by, c.complexity)
        if self._drift is not None:
            self._drift.observe(member.tier, c.complexity)
        shadow = self.shadow
        if shadow is not None and shadow.sample():
            shadow.submit(group.name, members, prompt, tokens, member, c.output_tokens)
