"""POST /v1/chat/completions: validate, draw faults, plan the reply, answer whole or as an SSE stream."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import orjson

from sluicegate.providers.simulator import openai_format as wire
from sluicegate.providers.simulator.asgi import (
    SSE_CONTENT,
    DisconnectWatch,
    Receive,
    Rejected,
    Send,
)
from sluicegate.providers.simulator.behaviour import (
    ChoicePlan,
    ReplyPlan,
    ToolRequest,
    plan_reply,
    reply_inputs,
)
from sluicegate.providers.simulator.config import FaultRule, ScriptedReply
from sluicegate.providers.simulator.delivery import deliver_early_failure, deliver_whole
from sluicegate.providers.simulator.family import choose_tool
from sluicegate.providers.simulator.runtime import Runtime
from sluicegate.providers.simulator.seeded import content_digest, seeded_rng
from sluicegate.providers.simulator.stats import ModelStats

_MAX_CHOICES = 128
_RESET_AFTER_S = 0.05
_SSE_HEADERS = [SSE_CONTENT, (b"cache-control", b"no-cache")]
# Cut off in the middle of a string: no JSON parser accepts it.
_MALFORMED_LINE = b'data: {"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"\n\n'


@dataclass(frozen=True, slots=True)
class ChatRequest:
    model: str
    messages: list[dict[str, Any]]
    stream: bool
    include_usage: bool
    n: int
    max_tokens: int | None
    tool: ToolRequest | None
    schema: Any = None  # response_format's JSON schema
    reasoning_tokens: int = 0  # hidden reasoning a `reasoning_effort` asks for, counted in completion tokens


def _positive_int(body: dict[str, Any], name: str, upper: int | None = None) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1 or (upper and value > upper):
        bound = f" between 1 and {upper}" if upper else " of at least 1"
        raise Rejected(400, wire.invalid_parameter(name, f"an integer{bound}"))
    return value


def _tool_request(body: dict[str, Any], messages: list[dict[str, Any]]) -> ToolRequest | None:
    """The function the reply calls: the one `tool_choice` forces, else the first offered, unless the model
    was just given a tool's result (then it answers in text, as a model ends an agent loop)."""
    tools = body.get("tools")
    if not tools:
        return None
    if not isinstance(tools, list):
        raise Rejected(400, wire.invalid_parameter("tools", "an array"))
    choice = body.get("tool_choice", "auto")
    functions = [
        tool["function"]
        for tool in tools
        if isinstance(tool, dict) and tool.get("type") == "function" and isinstance(tool.get("function"), dict)
    ]
    forced = None
    if isinstance(choice, dict):
        forced = (choice.get("function") or {}).get("name")
        if not any(f.get("name") == forced for f in functions):
            message = f"Invalid value for 'tool_choice': function '{forced}' not found in 'tools'."
            raise Rejected(400, wire.error_body(message, "invalid_request_error", "tool_choice"))
    mode = choice if isinstance(choice, str) else "required"
    offered = [(str(f.get("name", "")), f.get("parameters")) for f in functions]
    return choose_tool(offered, forced, mode, messages)


def _response_schema(body: dict[str, Any]) -> Any:
    """The JSON schema of `response_format: {type: json_schema}`; None for json_object or none."""
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
        return (response_format.get("json_schema") or {}).get("schema")
    return None


def parse_chat_request(body: Any) -> ChatRequest:
    if not isinstance(body, dict):
        raise Rejected(400, wire.invalid_parameter("body", "a JSON object"))
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise Rejected(400, wire.missing_parameter("model"))
    messages = body.get("messages")
    if messages is None:
        raise Rejected(400, wire.missing_parameter("messages"))
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise Rejected(400, wire.invalid_parameter("messages", "an array of message objects"))
    if not messages:
        raise Rejected(400, wire.error_body("[] is too short - 'messages'", "invalid_request_error", "messages"))
    stream = body.get("stream") is True
    options = body.get("stream_options")
    include_usage = stream and isinstance(options, dict) and options.get("include_usage") is True
    max_tokens = _positive_int(body, "max_completion_tokens")
    if max_tokens is None:
        max_tokens = _positive_int(body, "max_tokens")
    n = _positive_int(body, "n", _MAX_CHOICES) or 1
    tool = _tool_request(body, messages)
    effort = body.get("reasoning_effort")
    if effort is not None and effort not in REASONING_TOKENS:
        raise Rejected(400, wire.invalid_parameter("reasoning_effort", "one of " + ", ".join(REASONING_TOKENS)))
    schema = _response_schema(body)
    reasoning = REASONING_TOKENS.get(effort, 0) if isinstance(effort, str) else 0
    return ChatRequest(model, messages, stream, include_usage, n, max_tokens, tool, schema, reasoning)


# What a simulated reasoning model thinks, in hidden tokens, for each `reasoning_effort`.
REASONING_TOKENS = {"none": 0, "minimal": 0, "low": 32, "medium": 128, "high": 512, "xhigh": 1024}


async def chat_completions(
    runtime: Runtime, body: Any, receive: Receive, send: Send, script: ScriptedReply | None = None
) -> None:
    """`script`: the reply the request's `x-sim-reply` header asks for, over the model's own."""
    request = parse_chat_request(body)
    stats = runtime.stats.for_model(request.model)
    stats.requests += 1
    stats.last_request = body
    stats.in_flight += 1
    watch = DisconnectWatch(receive)
    try:
        await _answer(runtime, request, stats, watch, send, script)
    finally:
        stats.in_flight -= 1
        watch.close()


async def _answer(
    runtime: Runtime,
    request: ChatRequest,
    stats: ModelStats,
    watch: DisconnectWatch,
    send: Send,
    script: ScriptedReply | None,
) -> None:
    draw = runtime.faults.draw(request.model)
    failure = draw.failure
    if failure is not None:
        stats.fault(failure.type)
        if await deliver_early_failure(send, watch, stats, failure, request.model, request.stream):
            return
    if draw.slow_factor != 1.0:
        stats.fault("slow")
    behaviour = runtime.config.behaviour_for(request.model)
    digest = content_digest(request.messages)
    try:
        prompt_tokens = runtime.prompt_tokens.count(digest, request.messages)
    except (AttributeError, TypeError):
        raise Rejected(400, wire.invalid_parameter("messages", "an array of message objects")) from None
    if prompt_tokens > behaviour.context_window:
        raise Rejected(400, wire.context_length_exceeded(behaviour.context_window, prompt_tokens))
    plan = plan_reply(
        seeded_rng(runtime.config.seed, request.model, digest),
        behaviour,
        runtime.corpus,
        prompt_tokens=prompt_tokens,
        n=request.n,
        max_tokens=request.max_tokens,
        tool=request.tool,
        slow_factor=draw.slow_factor,
        new_call_id=lambda: runtime.ids.next("call_"),
        inputs=reply_inputs(script or behaviour.reply, request.messages, request.schema),
    )
    completion_id = runtime.ids.next("chatcmpl-")
    created = int(time.time())
    if request.stream:
        writer = wire.ChunkWriter(completion_id, created, request.model, runtime.fingerprint, request.include_usage)
        reasoning = request.reasoning_tokens * request.n
        await _stream(send, watch, stats, plan, writer, request.include_usage, failure, reasoning)
        return
    choices = [wire.choice(i, _message(c), c.finish_reason) for i, c in enumerate(plan.choices)]
    reasoning = request.reasoning_tokens * request.n
    usage = wire.usage(plan.prompt_tokens, plan.completion_tokens + reasoning, reasoning)
    completion = wire.completion(completion_id, created, request.model, runtime.fingerprint, choices, usage)
    await deliver_whole(send, watch, stats, plan.total_s, orjson.dumps(completion), failure)


def _message(choice: ChoicePlan) -> dict[str, Any]:
    call = choice.tool_call
    if choice.refusal:
        return wire.refusal_message(choice.text)
    if call is None:
        return wire.text_message(choice.text)
    return wire.tool_call_message([wire.tool_call(call.call_id, call.name, call.arguments)])


def _opening_delta(choice: ChoicePlan) -> dict[str, Any]:
    call = choice.tool_call
    return wire.role_delta() if call is None else wire.tool_call_start_delta(call.call_id, call.name)


def _piece_delta(choice: ChoicePlan, piece: str) -> dict[str, Any]:
    if choice.refusal:
        return wire.refusal_delta(piece)
    return wire.content_delta(piece) if choice.tool_call is None else wire.tool_arguments_delta(piece)


async def _send_chunk(send: Send, data: bytes) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": True})


async def _stream(
    send: Send,
    watch: DisconnectWatch,
    stats: ModelStats,
    plan: ReplyPlan,
    writer: wire.ChunkWriter,
    include_usage: bool,
    failure: FaultRule | None,
    reasoning_tokens: int = 0,
) -> None:
    """Send the reply one token per SSE event, paced by the plan; stop as soon as the client leaves.

    Unpaced (zero-latency) events are written together: the wire carries the same events, in far
    fewer writes.
    """
    if plan.ttft_s > 0 and await watch.sleep(plan.ttft_s):
        stats.streams_cancelled += 1
        return
    await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
    pending = [writer.delta(i, _opening_delta(c)) for i, c in enumerate(plan.choices)]
    steps = max(len(choice.pieces) for choice in plan.choices)
    break_at = min(failure.after_tokens or 0, steps) if failure is not None else None
    interval = plan.token_interval_s
    clock = asyncio.get_running_loop().time
    started = clock()
    for step in range(steps + 1):
        if step == break_at:
            await _send_chunk(send, b"".join(pending))
            pending.clear()
            if not await _break_stream(send, watch, stats, failure):
                return
        if step == steps:
            break
        if interval:
            await _send_chunk(send, b"".join(pending))
            pending.clear()
            wait = started + step * interval - clock()
            if (wait > 0 and await watch.sleep(wait)) or watch.disconnected:
                stats.streams_cancelled += 1
                return
        pending.extend(
            writer.delta(i, _piece_delta(choice, choice.pieces[step]))
            for i, choice in enumerate(plan.choices)
            if step < len(choice.pieces)
        )
    pending.extend(writer.delta(i, {}, choice.finish_reason) for i, choice in enumerate(plan.choices))
    if include_usage:
        usage = wire.usage(plan.prompt_tokens, plan.completion_tokens + reasoning_tokens, reasoning_tokens)
        pending.append(writer.usage(usage))
    pending.append(wire.DONE)
    await send({"type": "http.response.body", "body": b"".join(pending), "more_body": False})
    stats.streams_completed += 1


async def _break_stream(send: Send, watch: DisconnectWatch, stats: ModelStats, failure: FaultRule | None) -> bool:
    """Apply a mid-stream fault; True when the stream goes on afterwards."""
    if failure is None:
        return True
    if failure.type == "malformed_sse":
        # The stream carries on to [DONE]: a client that silently skips bad lines only shows a gap.
        await _send_chunk(send, _MALFORMED_LINE)
        return True
    if failure.type == "hang":
        await watch.until_disconnect()
        stats.streams_cancelled += 1
        return False
    # "reset". A real connection breaks some time after its last bytes arrived; dropping it in the same
    # instant would let many clients (aiohttp among them) discard the chunks still in their buffer.
    await watch.sleep(_RESET_AFTER_S)
    return False  # returning without finishing the body makes the server drop the connection
