"""The execute stage: one call to the chosen deployment through its adapter, streamed or whole."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

from sluicegate.canonical import ChatChunk, ChatResponse, EmbeddingRequest, EmbeddingResponse
from sluicegate.catalog import Deployment
from sluicegate.errors import ErrorClass, GatewayError, UpstreamError, upstream_to_client
from sluicegate.pipeline.context import RequestContext
from sluicegate.providers.http import UpstreamClient, UpstreamStream
from sluicegate.providers.sse import SSEParser


def _deployment(ctx: RequestContext) -> Deployment:
    if ctx.deployment is None:
        raise RuntimeError("execute stage reached without a routed deployment")
    return ctx.deployment


def client_error(ctx: RequestContext, error: UpstreamError) -> GatewayError:
    """Records the upstream failure on the context and shapes what the client is told."""
    ctx.outcome = str(error.error_class)
    deployment = ctx.deployment.name if ctx.deployment else "unknown"
    return upstream_to_client(error, deployment)


class Execute:
    name = "execute"

    def __init__(self, client: UpstreamClient) -> None:
        self._client = client

    async def complete(self, ctx: RequestContext) -> ChatResponse:
        deployment = _deployment(ctx)
        request = deployment.adapter.chat_request(deployment.endpoint, deployment.model, ctx.chat)
        ctx.attempts += 1
        try:
            reply = await self._client.call(deployment.endpoint, request)
            if reply.status >= 400:
                raise deployment.adapter.classify_error(reply.status, reply.headers, reply.body)
            response = deployment.adapter.chat_response(reply.body)
        except UpstreamError as error:
            raise client_error(ctx, error) from None
        ctx.usage = response.usage
        return response

    async def embed(self, ctx: RequestContext) -> EmbeddingResponse:
        deployment = _deployment(ctx)
        assert isinstance(ctx.request, EmbeddingRequest)
        request = deployment.adapter.embedding_request(deployment.endpoint, deployment.model, ctx.request)
        ctx.attempts += 1
        try:
            reply = await self._client.call(deployment.endpoint, request)
            if reply.status >= 400:
                raise deployment.adapter.classify_error(reply.status, reply.headers, reply.body)
            response = deployment.adapter.embedding_response(reply.body)
        except UpstreamError as error:
            raise client_error(ctx, error) from None
        ctx.usage = response.usage
        return response

    async def open_stream(self, ctx: RequestContext) -> AsyncIterator[ChatChunk]:
        """Opens the upstream stream; an upstream that fails before streaming raises here, not later."""
        deployment = _deployment(ctx)
        request = deployment.adapter.chat_request(deployment.endpoint, deployment.model, ctx.chat)
        ctx.attempts += 1
        stack = AsyncExitStack()
        try:
            upstream = await stack.enter_async_context(self._client.stream(deployment.endpoint, request))
            if upstream.status >= 400:
                body = await upstream.read_body()
                raise deployment.adapter.classify_error(upstream.status, upstream.headers, body)
        except UpstreamError as error:
            await stack.aclose()
            raise client_error(ctx, error) from None
        except BaseException:
            await stack.aclose()
            raise
        return self._chunks(deployment, upstream, stack)

    async def _chunks(
        self, deployment: Deployment, upstream: UpstreamStream, stack: AsyncExitStack
    ) -> AsyncIterator[ChatChunk]:
        decoder = deployment.adapter.stream_decoder()
        parser = SSEParser()
        try:
            async for data in upstream.chunks():
                for event, payload in parser.feed(data):
                    for chunk in decoder.decode(event, payload):
                        yield chunk
            if not decoder.done:
                raise UpstreamError(ErrorClass.CONNECTION, "the provider ended the stream before it was complete")
        finally:
            await stack.aclose()
