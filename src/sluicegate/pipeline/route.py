"""The route stage: logical model name -> the deployment that will serve it, and why."""

from __future__ import annotations

from sluicegate.catalog import ModelCatalog
from sluicegate.errors import bad_request, model_not_found
from sluicegate.pipeline.context import RequestContext

_KIND_OF_ENDPOINT = {"chat": "chat", "embeddings": "embedding"}


class FirstDeploymentRoute:
    """Picks the group's first deployment. The routing strategies replace this stage."""

    name = "route"

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
        ctx.deployment = group.deployments[0]
        ctx.route_reason = "first: first deployment of the group"
