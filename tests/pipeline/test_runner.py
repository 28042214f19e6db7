"""The pipeline alone: fake stages, a fake upstream and a fake reply sink, no server and no provider."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from sluicegate.canonical import ChatChunk, ChatRequest, ChatResponse, EmbeddingResponse, Usage
from sluicegate.errors import ErrorClass, GatewayError, UpstreamError
from sluicegate.pipeline.context import RequestContext
from sluicegate.pipeline.runner import Answer, ChunkSource, LocalReply, Pipeline


def text_chunk(text: str) -> ChatChunk:
    return ChatChunk("c1", "m", 0, [{"index": 0, "delta": {"content": text}, "finish_reason": None}])


def texts(batches: list[list[ChatChunk]]) -> list[str]:
    return [c.choices[0]["delta"].get("content", "") for batch in batches for c in batch if c.choices]


def response(text: str = "hello") -> ChatResponse:
    return ChatResponse(
        "r1",
        "m",
        0,
        [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        Usage(3, 2),
    )


def context(stream: bool = False) -> RequestContext:
    request = ChatRequest("m", [{"role": "user", "content": "hi"}], stream=stream)
    return RequestContext("req-1", "chat", "openai", {}, request)


class FakeReply:
    """Records what the client would receive, and when, relative to the stages (`events`)."""

    def __init__(self, events: list[str], leaves_after: int | None = None) -> None:
        self.events = events
        self.status: int | None = None
        self.body: Any = None
        self.batches: list[list[ChatChunk]] = []
        self.tail: str | None = None
        self.left = False
        self._leaves_after = leaves_after

    def encode(self, ctx: RequestContext, answer: Answer) -> bytes:
        self.body = answer
        return b"body"

    def encode_error(self, ctx: RequestContext, error: GatewayError) -> bytes:
        self.body = error
        return b"error"

    async def send(self, ctx: RequestContext, status: int, body: bytes, error: GatewayError | None = None) -> None:
        self.status = status
        self.events.append(f"send:{status}")

    async def open_stream(self, ctx: RequestContext) -> None:
        self.status = 200
        self.events.append("open")

    async def send_chunks(self, ctx: RequestContext, batch: list[ChatChunk]) -> None:
        self.batches.append(batch)
        if self._leaves_after is not None and len(self.batches) >= self._leaves_after:
            self.left = True
            raise asyncio.CancelledError  # what the server's disconnect watch does to the request's task

    def end_stream(self, ctx: RequestContext, error: GatewayError | None = None) -> bytes:
        self.tail = "done" if error is None else f"error:{error.code}"
        return b""

    async def send_last(self, data: bytes) -> None:
        self.events.append(f"last:{self.tail}")

    def client_left(self) -> bool:
        return self.left

    def close(self) -> None:
        self.events.append("close")


class FakeUpstream:
    def __init__(
        self, events: list[str], batches: list[list[ChatChunk]] | None = None, fail: int | None = None
    ) -> None:
        self.events = events
        self.batches = batches or []
        self.fail_after = fail  # batches before an upstream error (None: never)
        self.closed = False

    async def complete(self, ctx: RequestContext) -> ChatResponse:
        self.events.append("upstream")
        answer = response("from upstream")
        ctx.usage = answer.usage
        return answer

    async def embed(self, ctx: RequestContext) -> EmbeddingResponse:
        raise AssertionError("not used")

    async def open_stream(self, ctx: RequestContext) -> ChunkSource:
        self.events.append("upstream")
        if self.fail_after == 0:
            raise GatewayError(503, "no deployment", code="no_healthy_deployment")
        return self._source()

    async def _source(self) -> AsyncIterator[list[ChatChunk]]:
        try:
            for i, batch in enumerate(self.batches):
                if self.fail_after is not None and i >= self.fail_after:
                    raise UpstreamError(ErrorClass.SERVER_ERROR, "boom")
                yield batch
        finally:
            self.closed = True


class Recorder:
    """A stage with every hook, each writing what it saw to `events`."""

    def __init__(self, name: str, events: list[str], before_reply: bool = False) -> None:
        self.name = name
        self.events = events
        self.before_reply = before_reply

    async def on_request(self, ctx: RequestContext) -> LocalReply | None:
        self.events.append(f"{self.name}.request")
        return None

    async def on_finish(self, ctx: RequestContext) -> None:
        self.events.append(f"{self.name}.finish")


class Answering:
    name = "answering"

    def __init__(self, reply: LocalReply) -> None:
        self.reply = reply

    async def on_request(self, ctx: RequestContext) -> LocalReply:
        return self.reply


class Replacing:
    name = "replacing"

    def __init__(self) -> None:
        self.seen: list[Answer] = []
        self.cost_seen: int | None = None

    async def on_response(self, ctx: RequestContext, answer: Answer) -> Answer:
        self.seen.append(answer)
        self.cost_seen = ctx.cost_micros
        return response("replaced")


class HoldAll:
    """Holds every chunk until the stream ends (what a stage collecting a stream to cache it does)."""

    name = "hold"

    def __init__(self) -> None:
        self.held: list[ChatChunk] = []

    def on_chunks(self, ctx: RequestContext, batch: list[ChatChunk]) -> list[ChatChunk]:
        self.held.extend(batch)
        return []

    def on_end(self, ctx: RequestContext) -> list[ChatChunk]:
        held, self.held = self.held, []
        return held


class Upper:
    """Rewrites what passes (a redactor's shape): it must see what an earlier stage releases at the end."""

    name = "upper"

    def on_chunks(self, ctx: RequestContext, batch: list[ChatChunk]) -> list[ChatChunk]:
        return [text_chunk(c.choices[0]["delta"]["content"].upper()) for c in batch]

    def on_end(self, ctx: RequestContext) -> list[ChatChunk]:
        return [text_chunk("!")]


class DropAll:
    name = "meter"

    def __init__(self) -> None:
        self.seen = 0

    def on_chunk(self, ctx: RequestContext, chunk: ChatChunk) -> ChatChunk | None:
        self.seen += 1
        return None


async def test_a_whole_answer_is_in_the_ledger_before_it_is_sent_and_the_rest_finish_after() -> None:
    events: list[str] = []
    upstream = FakeUpstream(events)
    stages = [Recorder("auth", events), Recorder("ledger", events, before_reply=True), Recorder("record", events)]
    pipeline = Pipeline(stages, upstream)
    reply = FakeReply(events)
    await pipeline.handle(context(), reply)
    assert events == [
        "auth.request",
        "ledger.request",
        "record.request",
        "upstream",
        "ledger.finish",
        "send:200",
        "auth.finish",
        "record.finish",
    ]


async def test_a_local_reply_skips_the_later_request_stages_and_the_upstream_but_not_the_response_stages() -> None:
    events: list[str] = []
    upstream = FakeUpstream(events)
    replacing = Replacing()
    local = LocalReply(response("cached"), outcome="cache_hit")
    stages = [
        Recorder("auth", events),
        Answering(local),
        Recorder("admission", events),
        replacing,
        Recorder("ledger", events, before_reply=True),
    ]
    ctx = context()
    reply = FakeReply(events)
    await Pipeline(stages, upstream).handle(ctx, reply)
    assert "upstream" not in events and "admission.request" not in events
    assert events == ["auth.request", "ledger.finish", "send:200", "auth.finish", "admission.finish"]
    assert replacing.seen[0].choices[0]["message"]["content"] == "cached"  # type: ignore[union-attr]
    assert reply.body.choices[0]["message"]["content"] == "replaced"
    assert ctx.outcome == "cache_hit" and ctx.cost_micros == 0 and ctx.attempts == 0  # no provider was paid


async def test_a_response_stage_replaces_the_answer_before_it_is_priced_and_sent() -> None:
    events: list[str] = []
    replacing = Replacing()
    reply = FakeReply(events)
    ctx = context()
    await Pipeline([replacing], FakeUpstream(events)).handle(ctx, reply)
    assert replacing.seen[0].choices[0]["message"]["content"] == "from upstream"  # type: ignore[union-attr]
    assert reply.body.choices[0]["message"]["content"] == "replaced"
    assert replacing.cost_seen is None and ctx.cost_micros is None  # seen before pricing (no price here)


async def test_a_stage_holds_chunks_back_and_releases_them_at_the_end_through_the_stages_after_it() -> None:
    events: list[str] = []
    upstream = FakeUpstream(events, [[text_chunk("a")], [text_chunk("b"), text_chunk("c")]])
    reply = FakeReply(events)
    ctx = context(stream=True)
    await Pipeline([HoldAll(), Upper(), Recorder("ledger", events, True)], upstream).handle(ctx, reply)
    assert reply.batches == [[text_chunk("A"), text_chunk("B"), text_chunk("C"), text_chunk("!")]]
    assert events[-3:] == ["ledger.finish", "last:done", "close"]  # the ledger before the stream's end
    assert upstream.closed


async def test_the_meter_sees_every_chunk_first_and_a_chunk_it_drops_reaches_no_other_stage() -> None:
    events: list[str] = []
    upstream = FakeUpstream(events, [[text_chunk("a"), text_chunk("b")]])
    meter, hold = DropAll(), HoldAll()
    reply = FakeReply(events)
    await Pipeline([hold, meter], upstream).handle(context(stream=True), reply)  # listed after, still first
    assert meter.seen == 2 and reply.batches == []


async def test_a_local_stream_passes_the_chunk_stages_and_a_whole_local_answer_is_streamed_when_asked() -> None:
    async def canned() -> AsyncIterator[list[ChatChunk]]:
        yield [text_chunk("x")]

    events: list[str] = []
    reply = FakeReply(events)
    ctx = context(stream=True)
    await Pipeline([Answering(LocalReply(chunks=canned())), Upper()], None).handle(ctx, reply)
    assert texts(reply.batches) == ["X", "!"] and reply.tail == "done" and ctx.outcome == "local"

    reply = FakeReply(events)
    await Pipeline([Answering(LocalReply(response("whole")))], None).handle(context(stream=True), reply)
    assert texts(reply.batches) == ["whole"]
    assert reply.batches[0][-1].usage == Usage(3, 2)


async def test_an_error_before_the_first_token_is_a_whole_error_and_after_it_an_error_event() -> None:
    events: list[str] = []
    reply = FakeReply(events)
    ctx = context(stream=True)
    await Pipeline([Recorder("ledger", events, True)], FakeUpstream(events, fail=0)).handle(ctx, reply)
    assert events[-2:] == ["ledger.finish", "send:503"] and ctx.status == 503
    assert isinstance(reply.body, GatewayError) and reply.body.code == "no_healthy_deployment"

    events.clear()
    reply = FakeReply(events)
    ctx = context(stream=True)
    upstream = FakeUpstream(events, [[text_chunk("a")], [text_chunk("b")]], fail=1)
    await Pipeline([Recorder("ledger", events, True)], upstream).handle(ctx, reply)
    assert texts(reply.batches) == ["a"]
    assert reply.tail is not None and reply.tail.startswith("error:")
    assert events[-3:] == ["ledger.finish", f"last:{reply.tail}", "close"]
    assert ctx.status == 200 and ctx.outcome == "server_error" and upstream.closed


async def test_a_client_that_leaves_mid_stream_ends_the_exchange_as_cancelled_and_it_still_finishes() -> None:
    events: list[str] = []
    upstream = FakeUpstream(events, [[text_chunk("a")], [text_chunk("b")], [text_chunk("c")]])
    reply = FakeReply(events, leaves_after=1)
    ctx = context(stream=True)
    await Pipeline([Recorder("ledger", events, True), Recorder("record", events)], upstream).handle(ctx, reply)
    assert ctx.outcome == "cancelled" and ctx.status == 499
    assert events[-3:] == ["close", "ledger.finish", "record.finish"] and upstream.closed


async def test_a_cancellation_that_is_not_the_client_leaving_is_not_absorbed() -> None:
    events: list[str] = []
    upstream = FakeUpstream(events, [[text_chunk("a")], [text_chunk("b")]])
    reply = FakeReply(events, leaves_after=1)
    reply.client_left = lambda: False  # type: ignore[method-assign]
    with pytest.raises(asyncio.CancelledError):
        await Pipeline([], upstream).handle(context(stream=True), reply)


async def test_a_bug_in_a_stage_is_an_internal_error_in_the_client_format_not_a_crash() -> None:
    class Broken:
        name = "broken"

        async def on_request(self, ctx: RequestContext) -> None:
            raise KeyError("secret detail")

    events: list[str] = []
    reply = FakeReply(events)
    ctx = context()
    await Pipeline([Broken(), Recorder("record", events)], FakeUpstream(events)).handle(ctx, reply)
    assert reply.status == 500 and ctx.outcome == "internal_error" and "secret" not in reply.body.message
    assert events[-1] == "record.finish"


async def test_interrupt_ends_requests_not_answered_yet_with_an_error_and_still_finishes_them() -> None:
    """The gateway's grace period is over: a stream still waiting for its first token and a whole call still
    running each get an error response (503 gateway_shutting_down), and pass the ledger and the finish stages."""

    class Waiting(FakeUpstream):
        async def complete(self, ctx: RequestContext) -> ChatResponse:
            ctx.attempts = 1
            await asyncio.sleep(60)
            raise AssertionError("not reached")

        async def open_stream(self, ctx: RequestContext) -> ChunkSource:
            ctx.attempts = 1
            await asyncio.sleep(60)
            raise AssertionError("not reached")

    events: list[str] = []
    pipeline = Pipeline([Recorder("ledger", events, True), Recorder("record", events)], Waiting(events))
    contexts = [context(stream=True), context(stream=False)]
    contexts[1].request_id = "req-2"
    replies = [FakeReply(events), FakeReply(events)]
    tasks = [asyncio.create_task(pipeline.handle(c, r)) for c, r in zip(contexts, replies, strict=True)]
    await asyncio.sleep(0.05)
    assert pipeline.interrupt() == 2
    await asyncio.wait_for(asyncio.gather(*tasks), 5)  # neither raises: both were answered
    for ctx, reply in zip(contexts, replies, strict=True):
        assert reply.status == 503 and isinstance(reply.body, GatewayError)
        assert reply.body.code == "gateway_shutting_down" and ctx.outcome == "interrupted"
    assert events.count("ledger.finish") == 2 and events.count("record.finish") == 2
    assert pipeline.interrupt() == 0  # nothing left under way
