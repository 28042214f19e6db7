"""Deciding once: the model group a request will use and the facts every later stage reads, computed
in one place and kept on the context.

The `decide` stage runs right after auth: it looks the requested model group up (404, or 400 for the wrong
kind of model), and reads the request's hedge and priority once. After it, a group changes only through
`choose_group` (economy mode, the budget downgrade and the `auto` route, `pipeline/auto.py`), which
records a `ModelChoice`: the response header and the access log are rendered from it.
Fallbacks by error class and by context window are the route and execute stages' to take, recorded as
route steps.
"""

from __future__ import annotations

from dataclasses import dataclass

from sluicegate.catalog import ModelCatalog, ModelGroup
from sluicegate.errors import bad_request, model_not_found
from sluicegate.pipeline.context import RequestContext
from sluicegate.pipeline.records import ChoiceReason, ModelChoice

HEDGE_HEADER = "x-sluice-hedge"
PRIORITY_HEADER = "x-sluice-priority"
PRIORITIES = {"low": 0, "normal": 1, "high": 2, "critical": 3}
CHOICE_HEADERS: dict[ChoiceReason, str] = {  # auto: x-sluice-tier and x-sluice-classification say it
    "economy": "x-sluice-economy-from",
    "budget_downgrade": "x-sluice-budget-downgraded-from",
}
TIER_HEADER = "x-sluice-tier"  # set by the auto route; follows the group when admission moves it again
_KIND_OF_ENDPOINT = {"chat": "chat", "embeddings": "embedding"}


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What several stages need to know about a request, read from it once."""

    priority: int  # PRIORITIES: the header, else the key's metadata, else normal
    hedge: bool  # the client asked for a hedged request (x-sluice-hedge)


def facts_of(ctx: RequestContext) -> RequestFacts:
    """`ctx.facts`, read on first use (the decide stage does it for every request it sees)."""
    facts = ctx.facts
    if facts is None:
        header = ctx.headers.get(PRIORITY_HEADER)
        if header is None and ctx.principal is not None:
            header = ctx.principal.metadata.get("priority")
        priority = PRIORITIES.get((header or "normal").lower(), PRIORITIES["normal"])
        hedge = ctx.headers.get(HEDGE_HEADER, "").lower() in ("1", "true", "on")
        facts = ctx.facts = RequestFacts(priority, hedge)
    return facts


def choose_group(ctx: RequestContext, group: ModelGroup, reason: ChoiceReason) -> None:
    """The one way a request moves to another model group before routing."""
    assert ctx.request is not None
    ctx.choices += (ModelChoice(ctx.request.model, group.name, reason),)
    header = CHOICE_HEADERS.get(reason)
    if header is not None:
        ctx.response_headers[header] = ctx.request.model
    if ctx.model_changed_from is None:
        ctx.model_changed_from = ctx.request.model
    ctx.request.model = group.name
    ctx.group = group
    if ctx.route_tier is not None and group.capability is not None:  # an auto choice moved by a budget
        ctx.route_tier = ctx.response_headers[TIER_HEADER] = group.capability.tier


def undo_choice(ctx: RequestContext, catalog: ModelCatalog) -> None:
    """Takes the last `choose_group` back (the cheaper group could not be admitted either)."""
    assert ctx.request is not None and ctx.choices
    last = ctx.choices[-1]
    ctx.choices = ctx.choices[:-1]
    header = CHOICE_HEADERS.get(last.reason)
    if header is not None:
        ctx.response_headers.pop(header, None)
    ctx.request.model = last.requested
    if not ctx.choices:
        ctx.model_changed_from = None
    ctx.group = catalog.get(last.requested)
    if ctx.route_tier is not None and ctx.group is not None and ctx.group.capability is not None:
        ctx.route_tier = ctx.response_headers[TIER_HEADER] = ctx.group.capability.tier


class Decide:
    name = "decide"

    def __init__(self, catalog: ModelCatalog) -> None:
        self._catalog = catalog

    async def on_request(self, ctx: RequestContext) -> None:
        group = self._catalog.get(ctx.model)
        if group is None:
            raise model_not_found(ctx.model)
        if group.kind != _KIND_OF_ENDPOINT[ctx.endpoint]:
            raise bad_request(
                f"The model '{ctx.model}' is an {group.kind} model and cannot serve /{ctx.endpoint}.",
                param="model",
                code="model_not_supported",
            )
        ctx.group = group
        facts_of(ctx)
