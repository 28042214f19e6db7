"""Token counting (Anthropic's `/v1/messages/count_tokens`): a request stage that answers every request
itself with the gateway's own count; no model is called and nothing is billed."""

from __future__ import annotations

from sluicegate.canonical import ChatRequest, TokenCount
from sluicegate.catalog import ModelCatalog
from sluicegate.errors import model_not_found
from sluicegate.pipeline.context import RequestContext
from sluicegate.pipeline.runner import LocalReply
from sluicegate.wire.anthropic import count_prompt_tokens


class CountTokens:
    name = "count_tokens"

    def __init__(self, catalog: ModelCatalog) -> None:
        self._catalog = catalog

    async def on_request(self, ctx: RequestContext) -> LocalReply:
        assert isinstance(ctx.request, ChatRequest)
        if self._catalog.get(ctx.request.model) is None:  # counting for a model nobody serves would mislead
            raise model_not_found(ctx.request.model)
        return LocalReply(TokenCount(count_prompt_tokens(ctx.request)), outcome="ok")
