"""Serving the non-OpenAI wire formats (Anthropic, Gemini, Bedrock) with the same planner, knobs and faults.

A format module parses its request into a `FamilyRequest` and renders a `ReplyPlan` whole or as stream
events; this module routes paths to formats, draws faults, paces streams and watches for disconnects.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol
from urllib.parse import unquote

from sluicegate.providers.simulator.asgi import DisconnectWatch, Headers, Receive, Rejected, Send, send_response
from sluicegate.providers.simulator.behaviour import (
    ReplyPlan,
    ToolRequest,
    last_user_text,
    plan_reply,
    reply_inputs,
)
from sluicegate.providers.simulator.config import ScriptedReply
from sluicegate.providers.simulator.runtime import Runtime
from sluicegate.providers.simulator.seeded import content_digest, seeded_rng
from sluicegate.providers.simulator.thinking import ThinkingPlan, bad_signature, missing_thoughts, plan_thinking

_RESET_AFTER_S = 0.05


@dataclass(frozen=True, slots=True)
class FamilyRequest:
    model: str
    messages: list[dict[str, Any]]  # OpenAI-shaped, for counting prompt tokens
    stream: bool
    max_tokens: int | None
    tool: ToolRequest | None
    schema: Any = None  # the JSON schema the answer must follow, when the request gives one
    thinking_budget: int | None = None  # extended thinking asked for, with this many tokens at most


@dataclass(frozen=True, slots=True)
class Reply:
    """What a format needs to render a reply."""

    plan: ReplyPlan
    model: str
    reply_id: str
    created: int
    thinking: ThinkingPlan | None = None  # thoughts before the answer, when the request asked for them


class StreamWriter(Protocol):
    def opening(self) -> bytes: ...

    def piece(self, index: int) -> bytes: ...

    def closing(self) -> bytes: ...


class Format(Protocol):
    name: str
    call_prefix: str  # tool-call id prefix
    reply_prefix: str
    stream_headers: Headers

    def parse(self, body: Any, model: str | None) -> FamilyRequest: ...

    def whole(self, reply: Reply) -> bytes: ...

    def writer(self, reply: Reply) -> StreamWriter: ...

    def malformed(self) -> bytes: ...

    def error(self, kind: str, model: str, detail: str = "", retry_after: float | None = None) -> Rejected: ...


def last_is_tool_result(messages: list[dict[str, Any]]) -> bool:
    return bool(messages) and messages[-1].get("role") in ("tool", "function")


def choose_tool(
    functions: list[tuple[str, Any]], forced: str | None, mode: str, messages: list[dict[str, Any]]
) -> ToolRequest | None:
    """The tool the reply calls: the forced one, else the first unless the model was just given a result."""
    if not functions or mode == "none":
        return None
    if forced is not None:
        for name, parameters in functions:
            if name == forced:
                return ToolRequest(name, parameters)
        return None
    if mode != "required" and last_is_tool_result(messages):
        return None  # the model has its tool's answer: it replies in text
    name, parameters = functions[0]
    return ToolRequest(name, parameters)


def route(path: str) -> tuple[str, str | None, bool | None] | None:
    """(format name, model from the path, streamed per the path) for a family path, or None."""
    if path == "/v1/messages":
        return "anthropic", None, None  # the body says whether to stream
    if path.startswith("/v1beta/models/") or path.startswith("/v1/models/"):
        model, sep, method = path.split("/models/", 1)[1].rpartition(":")
        if sep and method in ("generateContent", "streamGenerateContent"):
            return "gemini", unquote(model), method == "streamGenerateContent"
        return None
    if path.startswith("/model/"):
        model, _, action = path[len("/model/") :].rpartition("/")
        if action in ("converse", "converse-stream"):
            return "bedrock", unquote(model), action == "converse-stream"
    return None


async def serve(
    runtime: Runtime,
    fmt: Format,
    body: Any,
    model: str | None,
    stream: bool | None,
    receive: Receive,
    send: Send,
    script: ScriptedReply | None = None,
) -> None:
    """`script`: the reply the request's `x-sim-reply` header asks for, over the model's own."""
    request = fmt.parse(body, model)
    if stream is not None and stream != request.stream:
        request = replace(request, stream=stream)
    stats = runtime.stats.for_model(request.model)
    stats.requests += 1
    stats.last_request = body
    stats.in_flight += 1
    watch = DisconnectWatch(receive)
    try:
        await _answer(runtime, fmt, request, watch, send, script)
    finally:
        stats.in_flight -= 1
        watch.close()


async def _answer(
    runtime: Runtime,
    fmt: Format,
    request: FamilyRequest,
    watch: DisconnectWatch,
    send: Send,
    script: ScriptedReply | None,
) -> None:
    stats = runtime.stats.for_model(request.model)
    draw = runtime.faults.draw(request.model)
    failure = draw.failure
    if failure is not None:
        stats.fault(failure.type)
        if failure.type in ("rate_limit", "server_error", "unavailable", "outage"):
            retry_after = failure.retry_after if failure.retry_after is not None else 1.0
            raise fmt.error(failure.type, request.model, retry_after=retry_after)
        if failure.type == "hang" and (not request.stream or failure.after_tokens is None):
            await watch.until_disconnect()
            if request.stream:
                stats.streams_cancelled += 1
            else:
                stats.requests_cancelled += 1
            return
    seed = runtime.config.seed
    problem = bad_signature(seed, request.messages)
    if problem is None and request.thinking_budget is not None:
        problem = missing_thoughts(request.messages)
    if problem is not None:
        raise fmt.error("bad_request", request.model, problem)
    behaviour = runtime.config.behaviour_for(request.model)
    digest = content_digest(request.messages)
    prompt_tokens = runtime.prompt_tokens.count(digest, request.messages)
    if prompt_tokens > behaviour.context_window:
        raise fmt.error("context_window", request.model, f"{prompt_tokens} tokens > {behaviour.context_window}")
    new_id: Callable[[], str] = lambda: runtime.ids.next(fmt.call_prefix)  # noqa: E731
    plan = plan_reply(
        seeded_rng(runtime.config.seed, request.model, digest),
        behaviour,
        runtime.corpus,
        prompt_tokens=prompt_tokens,
        n=1,
        max_tokens=request.max_tokens,
        tool=request.tool,
        slow_factor=draw.slow_factor,
        new_call_id=new_id,
        inputs=reply_inputs(script or behaviour.reply, request.messages, request.schema),
    )
    thinking = None
    if request.thinking_budget is not None:
        prompt = last_user_text(request.messages)
        thinking = plan_thinking(seed, request.model, digest, runtime.corpus, request.thinking_budget, prompt)
        plan = replace(plan, completion_tokens=plan.completion_tokens + thinking.tokens)
    reply = Reply(plan, request.model, runtime.ids.next(fmt.reply_prefix), int(time.time()), thinking)
    if not request.stream:
        if plan.total_s > 0 and await watch.sleep(plan.total_s):
            stats.requests_cancelled += 1
            return
        body = fmt.whole(reply)
        if failure is not None and failure.type == "malformed_sse":
            body = body[: len(body) // 2]
        if failure is not None and failure.type == "reset":
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"999")]})
            return
        await send_response(send, 200, body)
        return
    fault = failure.type if failure else None
    if await _stream(fmt, reply, watch, send, fault, failure.after_tokens if failure else None):
        stats.streams_completed += 1
    else:
        stats.streams_cancelled += 1


async def _stream(
    fmt: Format, reply: Reply, watch: DisconnectWatch, send: Send, fault: str | None, after: int | None
) -> bool:
    """Sends the reply event by event, paced by the plan; False when it ended early (fault or disconnect)."""
    plan = reply.plan
    if plan.ttft_s > 0 and await watch.sleep(plan.ttft_s):
        return False
    await send({"type": "http.response.start", "status": 200, "headers": fmt.stream_headers})
    writer = fmt.writer(reply)
    pending = [writer.opening()]
    pieces = len(plan.choices[0].pieces)
    interval = plan.token_interval_s
    for index in range(pieces):
        if fault is not None and index == (after or 0):
            await send({"type": "http.response.body", "body": b"".join(pending), "more_body": True})
            pending = []
            if fault == "malformed_sse":
                pending.append(fmt.malformed())
            elif fault == "hang":
                await watch.until_disconnect()
                return False
            elif fault == "reset":
                await watch.sleep(_RESET_AFTER_S)
                return False
        if interval:
            await send({"type": "http.response.body", "body": b"".join(pending), "more_body": True})
            pending = []
            if await watch.sleep(interval):
                return False
        pending.append(writer.piece(index))
    pending.append(writer.closing())
    await send({"type": "http.response.body", "body": b"".join(pending), "more_body": False})
    return True
