"""The pipeline: owns one exchange, from the parsed request to the last byte handed to the server.

`Pipeline.handle(ctx, reply)` runs it all: the request stages, the upstream call (or a stage's local
answer), the response or chunk stages, the ledger before the end of the answer leaves, the reply itself
(through `reply`, the server's sink that encodes in the client's format and writes) and the finish stages.

A stage is a small object with a `name` and any of these hooks (the pipeline looks for them once, when it
is built, and calls each in the order of its stage list):
- `async on_request(ctx) -> LocalReply | None`: may add to the context, stop the request by raising
  `GatewayError`, or answer it itself: the rest of the request stages and the upstream call are skipped,
  the answer still passes the response or chunk stages, the ledger (its own outcome, no provider cost) and
  the access log;
- `async on_response(ctx, response) -> response`: sees a whole answer before it is priced and sent, and
  may replace it, or raise `RetryAnswer` to have the upstream asked once more (the refused answer is billed
  beside the new one);
- `on_chunk(ctx, chunk) -> chunk | None`: the meter's hook, per chunk, before any other chunk stage, so it
  counts what the provider actually sent (None drops the chunk);
- `on_chunks(ctx, batch) -> batch` and `on_end(ctx) -> batch`: a stream's chunks in batches (what arrived
  in one network read); a stage may hold chunks back and release them later or when the stream ends;
- `on_open(ctx)`: a stream is about to send its head to the client (the ledger's "opened" record);
- `async on_finish(ctx)`: once, whatever happened. A stage with `before_reply = True` (the ledger) runs
  before the client receives the end of its answer, so no answer a client received can be missing from it
  even if the process is killed right after; the others run once the answer has gone.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sluicegate.canonical import ChatChunk, ChatRequest, ChatResponse, EmbeddingResponse, TokenCount
from sluicegate.errors import GatewayError, UpstreamError, internal_error, scrub
from sluicegate.pipeline.bill import request_bill
from sluicegate.pipeline.context import RequestContext, SideAttempt
from sluicegate.pipeline.execute import client_error

log = logging.getLogger("sluicegate.server")

Answer = ChatResponse | EmbeddingResponse | TokenCount
ChunkSource = AsyncIterator[list[ChatChunk]]


class RetryAnswer(Exception):
    """Raised by a response stage that refuses a whole answer and wants the upstream asked once more (an
    answer that is not the JSON the request asked for). The pipeline retries once; if it cannot (a local
    answer) or the new answer is refused too, the request ends with `error`."""

    def __init__(self, error: GatewayError) -> None:
        super().__init__(error.message)
        self.error = error


@dataclass(slots=True)
class LocalReply:
    """An answer a request stage gives itself (a cache hit, a canned reply): a whole response, or a source of
    chunk batches for a stream. `outcome` is what the ledger and the access log record for it."""

    response: Answer | None = None
    chunks: ChunkSource | None = None
    outcome: str = "local"


class Reply(Protocol):
    """The server's side of an exchange: encodes what the pipeline hands it in the client's format, and
    writes it. Encoding and writing are separate so the ledger can run between them."""

    def encode(self, ctx: RequestContext, answer: Answer) -> bytes: ...

    def encode_error(self, ctx: RequestContext, error: GatewayError) -> bytes: ...

    async def send(self, ctx: RequestContext, status: int, body: bytes, error: GatewayError | None = None) -> None:
        """A whole answer (or error), with its headers."""

    async def open_stream(self, ctx: RequestContext) -> None:
        """The head of a stream; from here on, a client that leaves cancels the exchange."""

    async def send_chunks(self, ctx: RequestContext, batch: list[ChatChunk]) -> None: ...

    def end_stream(self, ctx: RequestContext, error: GatewayError | None = None) -> bytes:
        """The stream's last bytes (its end, or an error event); the client leaving no longer cancels."""

    async def send_last(self, data: bytes) -> None: ...

    def client_left(self) -> bool:
        """Whether a cancellation came from the client leaving (if so, it is absorbed here)."""

    def close(self) -> None: ...


class Upstream(Protocol):
    """The call to a provider (`pipeline.execute.Execute`; a fake one in tests)."""

    async def complete(self, ctx: RequestContext) -> ChatResponse: ...

    async def embed(self, ctx: RequestContext) -> EmbeddingResponse: ...

    async def open_stream(self, ctx: RequestContext) -> ChunkSource:
        """Raises while no first token has come (so a failure can still fail over and answer an error)."""


class RequestStage(Protocol):
    name: str

    async def on_request(self, ctx: RequestContext) -> LocalReply | None: ...


class ResponseStage(Protocol):
    name: str

    async def on_response(self, ctx: RequestContext, response: Answer) -> Answer: ...


# A stage with `on_chunk` or `on_chunks` that changes a chunk in place (its choices, its extra) sets
# `edits_chunks = True`; one that only reads chunks, or returns new ones for those it changes, sets False.
# A stage that says nothing counts as editing. While no stage edits chunks in place, a stream whose
# provider speaks the client's format is relayed as the provider's bytes (`ChatChunk.raw`), not re-encoded;
# the chunks are still decoded for the stages, the usage and the first token.
EDITS_CHUNKS = "edits_chunks"


class ChunkStage(Protocol):
    """The meter's kind: one chunk at a time, first of all."""

    name: str

    def on_chunk(self, ctx: RequestContext, chunk: ChatChunk) -> ChatChunk | None: ...


class BatchStage(Protocol):
    name: str

    def on_chunks(self, ctx: RequestContext, batch: list[ChatChunk]) -> list[ChatChunk]: ...

    def on_end(self, ctx: RequestContext) -> list[ChatChunk]: ...


class OpenStage(Protocol):
    name: str

    def on_open(self, ctx: RequestContext) -> None: ...


class FinishStage(Protocol):
    name: str

    async def on_finish(self, ctx: RequestContext) -> None: ...


def _has_token(chunk: ChatChunk) -> bool:
    for choice in chunk.choices:
        delta = choice.get("delta") or {}
        if delta.get("content") or delta.get("tool_calls") or delta.get("refusal"):
            return True
    return False


def _text_length(batch: list[ChatChunk]) -> int:
    """The characters of output a batch carries (content, refusals, tool-call arguments): what an estimate of
    a stream's output tokens rests on when the provider never reports usage (a stop, a kill)."""
    n = 0
    for chunk in batch:
        for choice in chunk.choices:
            delta = choice.get("delta")
            if delta:
                text = delta.get("content")
                if text:
                    n += len(text)
                calls = delta.get("tool_calls")
                if calls:
                    for call in calls:
                        n += len((call.get("function") or {}).get("arguments") or "")
    return n


def shutting_down() -> GatewayError:
    return GatewayError(
        503,
        "The gateway is shutting down and its grace period for open streams is over; the answer so far is "
        "billed as estimated. Retry to continue on another instance.",
        type="server_error",
        code="gateway_shutting_down",
        headers={"retry-after": "1"},
    )


def price_usage(ctx: RequestContext) -> None:
    """Sets `ctx.cost_micros` from the usage so far; left None when the deployment's price is unknown."""
    deployment = ctx.deployment
    if deployment is not None and ctx.usage is not None and deployment.price is not None:
        ctx.cost_micros = deployment.price.cost_micros(ctx.usage)


def chunks_of(response: ChatResponse) -> list[ChatChunk]:
    """A whole answer as the chunks of a stream: each choice's message in one delta, then the usage."""
    choices = []
    for choice in response.choices:
        delta = dict(choice.get("message") or {})
        choices.append({"index": choice.get("index", 0), "delta": delta, "finish_reason": choice.get("finish_reason")})
    return [
        ChatChunk(response.id, response.model, response.created, choices, extra=response.extra),
        ChatChunk(response.id, response.model, response.created, [], usage=response.usage),
    ]


async def _one_batch(batch: list[ChatChunk]) -> ChunkSource:
    yield batch


@dataclass(slots=True)
class _Stream:
    chunks: ChunkSource


class Pipeline:
    def __init__(self, stages: Sequence[object], execute: Upstream | None = None) -> None:
        """`stages` in the order of the request path; each takes part through the hooks it has."""
        self.stages = tuple(stages)
        self.execute = execute
        self._on_request: tuple[RequestStage, ...] = tuple(s for s in stages if hasattr(s, "on_request"))  # type: ignore[misc]
        self._on_response: tuple[ResponseStage, ...] = tuple(s for s in stages if hasattr(s, "on_response"))  # type: ignore[misc]
        self._on_chunk: tuple[ChunkStage, ...] = tuple(s for s in stages if hasattr(s, "on_chunk"))  # type: ignore[misc]
        self._on_chunks: tuple[BatchStage, ...] = tuple(s for s in stages if hasattr(s, "on_chunks"))  # type: ignore[misc]
        self._on_open: tuple[OpenStage, ...] = tuple(s for s in stages if hasattr(s, "on_open"))  # type: ignore[misc]
        self._relay_raw = not any(getattr(s, EDITS_CHUNKS, True) for s in (*self._on_chunk, *self._on_chunks))
        finish: tuple[FinishStage, ...] = tuple(s for s in stages if hasattr(s, "on_finish"))  # type: ignore[misc]
        self._before_reply = tuple(s for s in finish if getattr(s, "before_reply", False))
        self._after_reply = tuple(s for s in finish if not getattr(s, "before_reply", False))
        # every exchange under way, so a stopping gateway can end each one with a word to its client
        self._exchanges: dict[str, tuple[RequestContext, asyncio.Task[Any] | None]] = {}

    def hooks(self) -> dict[str, list[str]]:
        """The names of the stages on each hook, in the order they run (for docs, tests and operators)."""
        names: dict[str, Sequence[RequestStage | ResponseStage | ChunkStage | BatchStage | OpenStage | FinishStage]] = {
            "on_request": self._on_request,
            "on_response": self._on_response,
            "on_chunk": self._on_chunk,
            "on_chunks": self._on_chunks,
            "on_open": self._on_open,
            "on_finish (before reply)": self._before_reply,
            "on_finish": self._after_reply,
        }
        return {hook: [stage.name for stage in stages] for hook, stages in names.items()}

    # -- the exchange --------------------------------------------------------------------------------

    async def handle(self, ctx: RequestContext, reply: Reply) -> None:
        """Runs the whole exchange of a parsed request and hands the answer (or error) to `reply`."""
        error: GatewayError | None = None
        exchanges = self._exchanges
        exchanges[ctx.request_id] = (ctx, asyncio.current_task())
        try:
            try:
                answer = await self._answer(ctx)
                if type(answer) is _Stream:
                    await self._stream(ctx, reply, answer.chunks)
                else:
                    body = reply.encode(ctx, answer)  # type: ignore[arg-type]
                    await self.seal(ctx)  # the ledger has it before the client does
                    await reply.send(ctx, 200, body)
            except GatewayError as exc:
                error = exc
                await self._fail(ctx, reply, exc)
            except Exception as exc:
                error = self._internal(ctx, exc)
                await self._fail(ctx, reply, error)
            except asyncio.CancelledError:
                if not ctx.interrupted or ctx.sealed:
                    raise
                # the gateway is stopping and its grace period is over before this request had an answer
                # (a stream still waiting for its first token, a whole call, a wait in the queue): the client
                # gets an error in its format, and the row and the budgets what the request used
                task = asyncio.current_task()
                if task is not None:
                    task.uncancel()
                error = shutting_down()
                ctx.outcome = "interrupted"
                await self._fail(ctx, reply, error)
            await self.finish(ctx, error)
        finally:
            exchanges.pop(ctx.request_id, None)

    def interrupt(self) -> int:
        """Ends every exchange still under way (the gateway's grace period is over): a stream already
        flowing with an error event, one not answered yet with an error response, each in its client's
        format, recorded and settled with its usage so far. Returns how many it ended."""
        ended = 0
        for ctx, task in list(self._exchanges.values()):
            if task is not None and not task.done() and not ctx.sealed and not ctx.interrupted:
                ctx.interrupted = True
                task.cancel()
                ended += 1
        return ended

    async def refuse(self, ctx: RequestContext, reply: Reply, error: GatewayError) -> None:
        """Answers a request the server could not hand over (an unreadable body) with `error`."""
        await self._fail(ctx, reply, error)
        await self.finish(ctx, error)

    async def _answer(self, ctx: RequestContext) -> Answer | _Stream:
        local = None
        for stage in self._on_request:
            local = await stage.on_request(ctx)
            if local is not None:
                break
        request = ctx.request
        streamed = type(request) is ChatRequest and request.stream
        response: Answer
        if local is not None:
            ctx.outcome = local.outcome
            ctx.cost_micros = 0  # no provider was paid for it
            if local.chunks is not None or streamed:
                if local.chunks is not None:
                    source = local.chunks
                else:
                    assert isinstance(local.response, ChatResponse), "a stream is answered with chunks"
                    source = _one_batch(chunks_of(local.response))
                return _Stream(self._chunks(ctx, source, paid=False))
            assert local.response is not None, "a local reply has a response or chunks"
            response = local.response
            ctx.first_token_at = time.perf_counter()
        else:
            execute = self.execute
            if execute is None:
                raise RuntimeError(f"no stage answered the {ctx.endpoint} request and there is no upstream")
            if ctx.endpoint == "embeddings":
                response = await execute.embed(ctx)
            elif streamed:
                ctx.relay_raw = self._relay_raw and ctx.client_format == "openai"
                # failures up to the first token raise here, before the client is answered
                return _Stream(self._chunks(ctx, await execute.open_stream(ctx)))
            else:
                response = await execute.complete(ctx)
                ctx.first_token_at = time.perf_counter()
        try:
            for response_stage in self._on_response:
                response = await response_stage.on_response(ctx, response)
        except RetryAnswer as retry:
            if local is not None or self.execute is None or type(response) is not ChatResponse:
                raise retry.error from None
            response = await self._retry(ctx, retry)
        if local is None:
            price_usage(ctx)
        return response

    async def _retry(self, ctx: RequestContext, retry: RetryAnswer) -> Answer:
        """Asks the upstream once more for a whole answer a response stage refused; the refused answer's
        tokens are billed beside the new one. Refused again, the request ends with the stage's error."""
        if ctx.deployment is not None and ctx.usage is not None:
            ctx.side_attempts.append(SideAttempt(ctx.deployment, ctx.usage, ctx.usage_estimated))
        ctx.usage = None
        ctx.usage_estimated = False
        assert self.execute is not None
        response: Answer = await self.execute.complete(ctx)
        ctx.first_token_at = time.perf_counter()
        try:
            for response_stage in self._on_response:
                response = await response_stage.on_response(ctx, response)
        except RetryAnswer as again:
            raise again.error from None
        return response

    async def _stream(self, ctx: RequestContext, reply: Reply, chunks: ChunkSource) -> None:
        for stage in self._on_open:
            stage.on_open(ctx)
        await reply.open_stream(ctx)
        try:
            async for batch in chunks:
                await reply.send_chunks(ctx, batch)
            tail = reply.end_stream(ctx)
            await self.seal(ctx)  # the ledger has it before the client sees the stream end
            await reply.send_last(tail)
        except GatewayError as error:  # the upstream failed after the stream started
            ctx.error_code = error.code
            tail = reply.end_stream(ctx, error)
            await self.seal(ctx)
            await reply.send_last(tail)
        except asyncio.CancelledError:
            if ctx.interrupted and not reply.client_left():
                # the gateway is stopping and its grace period is over: the client is told, in its format,
                # and the row and the budgets get the usage so far
                task = asyncio.current_task()
                if task is not None:
                    task.uncancel()
                stopping = shutting_down()
                ctx.outcome = "interrupted"
                ctx.error_code = stopping.code
                tail = reply.end_stream(ctx, stopping)
                await self.seal(ctx)
                await reply.send_last(tail)
                return
            if not reply.client_left():
                raise
            ctx.outcome = "cancelled"
            ctx.status = 499  # the client closed the request (nginx's convention)
        except Exception as exc:
            tail = reply.end_stream(ctx, self._internal(ctx, exc))
            await self.seal(ctx)
            await reply.send_last(tail)
        finally:
            reply.close()
            await chunks.aclose()  # type: ignore[attr-defined]

    async def _chunks(self, ctx: RequestContext, upstream: ChunkSource, paid: bool = True) -> ChunkSource:
        """The stream as the client gets it: timed, priced and metered chunk by chunk, then through the
        chunk stages batch by batch; what they still hold comes out when the upstream ends. A local answer's
        usage (a cached answer's, shown to the client) is not this request's: no provider was `paid`."""
        meter = self._on_chunk
        stages = self._on_chunks
        try:
            async for batch in upstream:
                out: list[ChatChunk] = []
                for chunk in batch:
                    if ctx.first_token_at is None and _has_token(chunk):
                        ctx.first_token_at = time.perf_counter()
                    if chunk.usage is not None and paid:
                        ctx.usage = chunk.usage
                        price_usage(ctx)
                    for stage in meter:
                        processed = stage.on_chunk(ctx, chunk)
                        if processed is None:
                            break
                        chunk = processed
                    else:
                        out.append(chunk)
                    if ctx.cut_off:  # the meter ended the stream: stop reading (and paying for) the upstream
                        break
                for batch_stage in stages:
                    out = batch_stage.on_chunks(ctx, out)
                if out:
                    ctx.relayed_chunks += len(out)
                    ctx.relayed_chars += _text_length(out)
                    yield out
                if ctx.cut_off:
                    break
            if stages:
                held: list[ChatChunk] = []
                for batch_stage in stages:  # what one stage releases at the end passes the stages after it
                    if held:
                        held = batch_stage.on_chunks(ctx, held)
                    held = held + batch_stage.on_end(ctx)
                if held:
                    yield held
        except UpstreamError as error:
            raise client_error(ctx, error) from None
        finally:
            await upstream.aclose()  # type: ignore[attr-defined]

    async def _fail(self, ctx: RequestContext, reply: Reply, error: GatewayError) -> None:
        body = reply.encode_error(ctx, error)
        await self.seal(ctx, error)
        await reply.send(ctx, error.status, body, error)

    @staticmethod
    def _internal(ctx: RequestContext, exc: Exception) -> GatewayError:
        ctx.outcome = "internal_error"
        log.error("internal error request_id=%s error=%s: %s", ctx.request_id, type(exc).__name__, scrub(str(exc)))
        return internal_error(ctx.request_id)

    # -- the end of a request --------------------------------------------------------------------------

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
