"""The pipeline: request stages in order, the execute stage, chunk stages on streams, finish stages always.

A stage is a small object with a `name` and any of these hooks:
- `async on_request(ctx)`: may add to the context or stop the request by raising `GatewayError`;
- `on_chunk(ctx, chunk) -> chunk | None`: sees every stream chunk in order (None drops it);
- `async on_finish(ctx)`: runs once when the request is over, whatever its outcome (settle, record).
  A finish stage with `before_reply = True` (the ledger) runs before the client receives the last bytes
  of its answer (`Pipeline.seal`), so no answer a client received can be missing from it, even if the
  process is killed right after; the others run once the answer has gone (`Pipeline.finish`).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from sluicegate.canonical import ChatChunk, ChatResponse, EmbeddingResponse
from sluicegate.errors import GatewayError, UpstreamError
from sluicegate.pipeline.bill import request_bill
from sluicegate.pipeline.context import RequestContext
from sluicegate.pipeline.execute import Execute, client_error


class RequestStage(Protocol):
    name: str

    async def on_request(self, ctx: RequestContext) -> None: ...


class ChunkStage(Protocol):
    name: str

    def on_chunk(self, ctx: RequestContext, chunk: ChatChunk) -> ChatChunk | None: ...


class FinishStage(Protocol):
    name: str

    async def on_finish(self, ctx: RequestContext) -> None: ...


def _has_token(chunk: ChatChunk) -> bool:
    for choice in chunk.choices:
        delta = choice.get("delta") or {}
        if delta.get("content") or delta.get("tool_calls") or delta.get("refusal"):
            return True
    return False


def price_usage(ctx: RequestContext) -> None:
    """Sets `ctx.cost_micros` from the usage so far; left None when the deployment's price is unknown."""
    deployment = ctx.deployment
    if deployment is not None and ctx.usage is not None and deployment.price is not None:
        ctx.cost_micros = deployment.price.cost_micros(ctx.usage)


class Pipeline:
    def __init__(
        self,
        request_stages: Sequence[RequestStage],
        execute: Execute,
        chunk_stages: Sequence[ChunkStage] = (),
        finish_stages: Sequence[FinishStage] = (),
    ) -> None:
        self.request_stages = tuple(request_stages)
        self.execute = execute
        self.chunk_stages = tuple(chunk_stages)
        self.finish_stages = tuple(finish_stages)
        self._before_reply = tuple(s for s in finish_stages if getattr(s, "before_reply", False))
        self._after_reply = tuple(s for s in finish_stages if not getattr(s, "before_reply", False))

    async def admit(self, ctx: RequestContext) -> None:
        """Runs the request stages; the request is then ready to execute."""
        for stage in self.request_stages:
            await stage.on_request(ctx)

    async def complete(self, ctx: RequestContext) -> ChatResponse:
        await self.admit(ctx)
        response = await self.execute.complete(ctx)
        ctx.first_token_at = time.perf_counter()
        price_usage(ctx)
        return response

    async def embed(self, ctx: RequestContext) -> EmbeddingResponse:
        await self.admit(ctx)
        response = await self.execute.embed(ctx)
        price_usage(ctx)
        return response

    async def stream(self, ctx: RequestContext) -> AsyncIterator[list[ChatChunk]]:
        """Admits and opens the stream; failures up to here raise before the client is answered.

        The stream yields batches: the chunks that arrived in one network read, in order."""
        await self.admit(ctx)
        upstream = await self.execute.open_stream(ctx)
        return self._metered(ctx, upstream)

    async def _metered(
        self, ctx: RequestContext, upstream: AsyncIterator[list[ChatChunk]]
    ) -> AsyncIterator[list[ChatChunk]]:
        stages = self.chunk_stages
        try:
            async for batch in upstream:
                out: list[ChatChunk] = []
                for chunk in batch:
                    if ctx.first_token_at is None and _has_token(chunk):
                        ctx.first_token_at = time.perf_counter()
                    if chunk.usage is not None:
                        ctx.usage = chunk.usage
                        price_usage(ctx)
                    for stage in stages:
                        processed = stage.on_chunk(ctx, chunk)
                        if processed is None:
                            break
                        chunk = processed
                    else:
                        out.append(chunk)
                    if ctx.cut_off:  # the meter ended the stream: stop reading (and paying for) the upstream
                        break
                if out:
                    yield out
                if ctx.cut_off:
                    break
        except UpstreamError as error:
            raise client_error(ctx, error) from None
        finally:
            await upstream.aclose()  # type: ignore[attr-defined]

    async def seal(self, ctx: RequestContext, error: GatewayError | None = None) -> None:
        """The request's outcome is known: fixes it and its bill, and runs the stages that must be done
        before the client receives the end of the answer. Once per request; `finish` seals if not yet."""
        if ctx.sealed:
            return
        ctx.sealed = True
        if ctx.finished_at is None:
            ctx.finished_at = time.perf_counter()
        if error is not None:
            ctx.status = error.status
            ctx.error_code = error.code
            if ctx.outcome == "ok":
                ctx.outcome = "client_error" if error.status < 500 else "internal_error"
        request_bill(ctx)  # once, for every finish stage: the budget and the ledger see the same bill
        for stage in self._before_reply:
            await stage.on_finish(ctx)

    async def finish(self, ctx: RequestContext, error: GatewayError | None = None) -> None:
        try:
            await self.seal(ctx, error)
        finally:
            deferred, ctx.after_reply = ctx.after_reply, []
            for callback in deferred:  # whatever happened, an upstream call's slot and statistics settle
                callback()
        for stage in self._after_reply:
            await stage.on_finish(ctx)
