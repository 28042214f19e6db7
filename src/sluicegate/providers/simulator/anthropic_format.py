"""The Anthropic Messages wire format as the simulator serves it: messages, stream events, errors."""

from __future__ import annotations

from typing import Any

import orjson

from sluicegate.errors import GatewayError
from sluicegate.providers.content import forced_function
from sluicegate.providers.simulator.asgi import SSE_CONTENT, Rejected
from sluicegate.providers.simulator.family import FamilyRequest, Reply, choose_tool
from sluicegate.wire import anthropic as anthropic_wire

STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"}
_ERRORS = {
    "rate_limit": (429, "rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit."),
    "server_error": (500, "api_error", "Internal server error"),
    "unavailable": (529, "overloaded_error", "Overloaded"),
    "outage": (529, "overloaded_error", "Overloaded"),
    "context_window": (400, "invalid_request_error", "prompt is too long: "),
    "bad_request": (400, "invalid_request_error", ""),
}


def _event(name: str, payload: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def error_body(kind: str, message: str) -> bytes:
    return orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})


def thinking_blocks(reply: Reply) -> list[dict[str, Any]]:
    thinking = reply.thinking
    if thinking is None:
        return []
    blocks: list[dict[str, Any]] = [{"type": "thinking", "thinking": thinking.text, "signature": thinking.signature}]
    if thinking.redacted is not None:
        blocks.append({"type": "redacted_thinking", "data": thinking.redacted})
    return blocks


def _thinking_events(reply: Reply) -> bytes:
    """The thoughts as their own blocks before the answer: a thinking block's deltas, its signature, and a
    redacted block whole in its start event."""
    thinking = reply.thinking
    if thinking is None:
        return b""
    start = {"type": "thinking", "thinking": "", "signature": ""}
    out = _event("content_block_start", {"type": "content_block_start", "index": 0, "content_block": start})
    out += _event("ping", {"type": "ping"})
    for piece in thinking.pieces:
        delta = {"type": "thinking_delta", "thinking": piece}
        out += _event("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta})
    signed = {"type": "signature_delta", "signature": thinking.signature}
    out += _event("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": signed})
    out += _event("content_block_stop", {"type": "content_block_stop", "index": 0})
    if thinking.redacted is not None:
        block = {"type": "redacted_thinking", "data": thinking.redacted}
        out += _event("content_block_start", {"type": "content_block_start", "index": 1, "content_block": block})
        out += _event("content_block_stop", {"type": "content_block_stop", "index": 1})
    return out


class _Writer:
    def __init__(self, reply: Reply) -> None:
        self._reply = reply
        self._choice = reply.plan.choices[0]
        self._index = len(thinking_blocks(reply))  # the answer's block follows the thoughts

    def opening(self) -> bytes:
        plan = self._reply.plan
        message: dict[str, Any] = {
            "id": self._reply.reply_id,
            "type": "message",
            "role": "assistant",
            "model": self._reply.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": plan.prompt_tokens,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": 1,
            },
        }
        call = self._choice.tool_call
        block: dict[str, Any] = (
            {"type": "text", "text": ""}
            if call is None
            else {"type": "tool_use", "id": call.call_id, "name": call.name, "input": {}}
        )
        index = self._index
        opening = _event("message_start", {"type": "message_start", "message": message}) + _thinking_events(self._reply)
        opening += _event(
            "content_block_start", {"type": "content_block_start", "index": index, "content_block": block}
        )
        return opening + (_event("ping", {"type": "ping"}) if index == 0 else b"")

    def piece(self, index: int) -> bytes:
        piece = self._choice.pieces[index]
        if self._choice.tool_call is None:
            delta = {"type": "text_delta", "text": piece}
        else:
            delta = {"type": "input_json_delta", "partial_json": piece}
        return _event("content_block_delta", {"type": "content_block_delta", "index": self._index, "delta": delta})

    def closing(self) -> bytes:
        delta = {"stop_reason": STOP_REASONS[self._choice.finish_reason], "stop_sequence": None}
        usage = {"output_tokens": self._reply.plan.completion_tokens}  # cumulative, as Anthropic sends it
        return (
            _event("content_block_stop", {"type": "content_block_stop", "index": self._index})
            + _event("message_delta", {"type": "message_delta", "delta": delta, "usage": usage})
            + _event("message_stop", {"type": "message_stop"})
        )


class AnthropicFormat:
    name = "anthropic"
    call_prefix = "toolu_"
    reply_prefix = "msg_"
    stream_headers = [SSE_CONTENT, (b"cache-control", b"no-cache")]

    def parse(self, body: Any, model: str | None) -> FamilyRequest:
        if not isinstance(body, dict):
            raise self.error("bad_request", "", "the body must be a JSON object")
        try:
            request = anthropic_wire.parse_chat_request(orjson.dumps(body))
        except GatewayError as error:
            raise self.error("bad_request", "", error.message) from None
        functions = [(t["function"]["name"], t["function"].get("parameters")) for t in request.params.get("tools", [])]
        choice = request.params.get("tool_choice", "auto")
        forced = forced_function(choice) if isinstance(choice, dict) else None
        messages: list[dict[str, Any]] = list(request.messages)  # type: ignore[arg-type]
        tool = choose_tool(functions, forced, choice if isinstance(choice, str) else "required", messages)
        thinking = request.params.get("thinking") or {}
        budget = thinking.get("budget_tokens", 4096) if thinking.get("type") in ("enabled", "adaptive") else None
        return FamilyRequest(request.model, messages, request.stream, request.max_tokens, tool, thinking_budget=budget)

    def whole(self, reply: Reply) -> bytes:
        choice = reply.plan.choices[0]
        call = choice.tool_call
        content: list[dict[str, Any]] = (
            [{"type": "text", "text": choice.text}]
            if call is None
            else [{"type": "tool_use", "id": call.call_id, "name": call.name, "input": orjson.loads(call.arguments)}]
        )
        return orjson.dumps(
            {
                "id": reply.reply_id,
                "type": "message",
                "role": "assistant",
                "model": reply.model,
                "content": thinking_blocks(reply) + content,
                "stop_reason": STOP_REASONS[choice.finish_reason],
                "stop_sequence": None,
                "usage": {
                    "input_tokens": reply.plan.prompt_tokens,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 0,
                    "output_tokens": reply.plan.completion_tokens,
                },
            }
        )

    def writer(self, reply: Reply) -> _Writer:
        return _Writer(reply)

    def malformed(self) -> bytes:
        return b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type\n\n'

    def error(self, kind: str, model: str, detail: str = "", retry_after: float | None = None) -> Rejected:
        status, type_, message = _ERRORS[kind]
        headers = [(b"retry-after", f"{retry_after:g}".encode())] if retry_after and status == 429 else None
        return Rejected(status, error_body(type_, message + detail), headers)
