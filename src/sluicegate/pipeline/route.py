"""The route stage: logical model name -> the deployment to try first, the fallback chain, and why."""

from __future__ import annotations

from sluicegate.catalog import ModelCatalog
from sluicegate.errors import GatewayError, bad_request, model_not_found
from sluicegate.pipeline.context import RequestContext
from sluicegate.pipeline.records import RouteStep, RouteStepKind
from sluicegate.principal import Principal
from sluicegate.routing.needs import count_prompt, needs_of
from sluicegate.routing.router import RoutePlan, Router

_KIND_OF_ENDPOINT = {"chat": "chat", "embeddings": "embedding"}
REGIONS_METADATA = "allowed_regions"


def allowed_regions(principal: Principal | None) -> frozenset[str] | None:
    """The regions this request may be served from (None: anywhere).

    `Principal.allowed_regions`, which the key store sets to the intersection of the tenant's, team's,
    user's and key's restrictions (`keys.residency`); for a principal built elsewhere, its metadata entry
    `allowed_regions` ("eu" or "eu,us-east-1") still restricts it.
    """
    if principal is None:
        return None
    if principal.allowed_regions:
        return frozenset(principal.allowed_regions)
    declared = principal.metadata.get(REGIONS_METADATA)
    if declared:
        regions = frozenset(r.strip() for r in declared.split(",") if r.strip())
        return regions or None
    return None


class Route:
    name = "route"

    def __init__(self, catalog: ModelCatalog, router: Router) -> None:
        self._catalog = catalog
        self._router = router

    async def on_request(self, ctx: RequestContext) -> None:
        # Admission plans the route itself when deployments have their own RPM/TPM (one hot-state call takes
        # a place in the first with room); its plan, without the deployments that have no place, stands.
        plan: RoutePlan = ctx.route_plan if ctx.route_plan is not None else self.plan(ctx)
        chosen = ctx.group
        ctx.group = plan.group
        ctx.route_plan = plan
        ctx.deployment = plan.chain[0] if plan.chain else None
        kind: RouteStepKind = "context_fallback" if chosen is not None and plan.group is not chosen else "plan"
        step = RouteStep(kind, plan.reason)
        route = ctx.route
        ctx.route = [route[0], step] if route and route[0].kind == "auto" else [step]  # the auto route's words stay

    def plan(self, ctx: RequestContext) -> RoutePlan:
        """The route for the request's model: raises 404, 400 or 403 when no deployment could ever serve it."""
        group = ctx.group or self._catalog.get(ctx.model)  # the decide stage's choice, or admission's
        if group is None:
            raise model_not_found(ctx.model)
        if group.kind != _KIND_OF_ENDPOINT[ctx.endpoint]:
            raise bad_request(
                f"The model '{ctx.model}' is an {group.kind} model and cannot serve /{ctx.endpoint}.",
                param="model",
                code="model_not_supported",
            )
        assert ctx.request is not None
        regions = allowed_regions(ctx.principal)
        needs = needs_of(ctx.request, ctx.headers, regions)
        router = self._router
        if router.needs_counting(group, needs):
            count_prompt(needs, ctx.request)
        try:
            return router.plan(group, needs)
        except GatewayError as error:
            return self._context_fallback(ctx, error, group.routing.fallbacks_by_error.get("context_window", []))

    def _context_fallback(self, ctx: RequestContext, error: GatewayError, fallbacks: list[str]) -> RoutePlan:
        """A prompt too long for every deployment goes to the group's `context_window` fallback, if any."""
        if error.code != "context_length_exceeded" or not fallbacks:
            raise error
        assert ctx.request is not None
        for group in self._router.groups(fallbacks):
            needs = needs_of(ctx.request, ctx.headers, allowed_regions(ctx.principal))
            tokens = count_prompt(needs, ctx.request)
            try:
                plan = self._router.plan(group, needs)
            except GatewayError:
                continue
            plan.reason = f"context: {tokens} tokens too long for {ctx.model}, {plan.reason}"
            return plan
        raise error
