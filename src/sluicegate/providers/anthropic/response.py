"""Anthropic Messages response and stream events -> canonical response and chunks (pure functions)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from sluicegate.canonical import ChatChunk, ChatResponse, FinishReason, ThinkingBlock, ToolCall, Usage
from sluicegate.errors import ErrorClass, UpstreamError, scrub
from sluicegate.providers.content import dumps_arguments
from sluicegate.providers.shape import load_object, upstream_shape

# Anthropic stop_reason -> canonical finish_reason. `refusal` is Claude's safety stop.
FINISH_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

# Anthropic error `type` -> error class (the HTTP status says the same; inside a stream only the type exists).
ERROR_TYPES: dict[str, ErrorClass] = {
    "invalid_request_error": ErrorClass.BAD_REQUEST,
    "authentication_error": ErrorClass.AUTH,
    "permission_error": ErrorClass.AUTH,
    "billing_error": ErrorClass.AUTH,
    "not_found_error": ErrorClass.SERVER_ERROR,
    "request_too_large": ErrorClass.CONTEXT_WINDOW,
    "rate_limit_error": ErrorClass.RATE_LIMITED,
    "api_error": ErrorClass.SERVER_ERROR,
    "overloaded_error": ErrorClass.OVERLOADED,
    "timeout_error": ErrorClass.TIMEOUT,
}


def finish_reason(stop_reason: str | None) -> FinishReason | None:
    if stop_reason is None:
        return None
    try:
        return FINISH_REASONS[stop_reason]
    except KeyError:
        # A stop reason added after this table: refuse to guess rather than call it a natural stop.
        raise UpstreamError(ErrorClass.SERVER_ERROR, f"unknown Anthropic stop_reason '{stop_reason}'") from None


def parse_usage(raw: Mapping[str, Any] | None) -> Usage:
    """Anthropic's input_tokens excludes cache reads and writes; canonical input counts them all."""
    if not raw:
        return Usage()
    cached = raw.get("cache_read_input_tokens") or 0
    written = raw.get("cache_creation_input_tokens") or 0
    return Usage(
        input_tokens=(raw.get("input_tokens") or 0) + cached + written,
        output_tokens=raw.get("output_tokens") or 0,
        cached_input_tokens=cached,
        cache_write_tokens=written,
    )


def load(body: bytes, what: str) -> dict[str, Any]:
    return load_object(body, "Anthropic", what)


@upstream_shape("Anthropic", "response")
def chat_response(body: bytes) -> ChatResponse:
    data = load(body, "response")
    text: list[str] = []
    calls: list[ToolCall] = []
    thoughts: list[ThinkingBlock] = []
    for block in data.get("content") or ():
        kind = block.get("type")
        if kind == "thinking":
            thoughts.append(
                {"type": "thinking", "thinking": block.get("thinking", ""), "signature": block.get("signature", "")}
            )
        elif kind == "redacted_thinking":
            thoughts.append({"type": "redacted_thinking", "data": block.get("data", "")})
        elif kind == "text":
            text.append(block.get("text", ""))
        elif kind == "tool_use":
            calls.append(
                {
                    "id": block.get("id", ""),
                    "type": "function",
                    "function": {"name": block.get("name", ""), "arguments": dumps_arguments(block.get("input"))},
                }
            )
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text or not calls else None}
    if thoughts:
        message["reasoning_content"] = "".join(t.get("thinking", "") for t in thoughts)
        message["thinking_blocks"] = thoughts
    if calls:
        message["tool_calls"] = calls
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason(data.get("stop_reason"))}
    return ChatResponse(
        id=data.get("id", ""),
        model=data.get("model", ""),
        created=int(time.time()),
        choices=[choice],
        usage=parse_usage(data.get("usage")),
    )


def stream_error(data: Mapping[str, Any]) -> UpstreamError:
    error = data.get("error") or {}
    kind = str(error.get("type") or "api_error")
    return UpstreamError(ERROR_TYPES.get(kind, ErrorClass.SERVER_ERROR), scrub(str(error.get("message") or kind)))


class AnthropicStreamDecoder:
    """Turns Anthropic's SSE events into canonical chunks; one canonical tool index per tool_use block."""

    __slots__ = ("_created", "_id", "_model", "_tool_index", "_usage", "done")

    def __init__(self) -> None:
        self.done = False
        self._id = ""
        self._model = ""
        self._created = int(time.time())
        self._usage: dict[str, Any] = {}
        self._tool_index: dict[int, int] = {}  # content block index -> canonical tool-call index

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> ChatChunk:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return ChatChunk(self._id, self._model, self._created, [choice])

    @upstream_shape("Anthropic", "stream event")
    def decode(self, event: str | None, data: bytes) -> list[ChatChunk]:
        payload = load(data, "stream event")
        kind = payload.get("type", event)
        if kind == "content_block_delta":
            delta = payload.get("delta") or {}
            if delta.get("type") == "text_delta":
                return [self._chunk({"content": delta.get("text", "")})]
            if delta.get("type") == "input_json_delta":
                index = self._tool_index.get(payload.get("index", 0), 0)
                fragment = {"index": index, "function": {"arguments": delta.get("partial_json", "")}}
                return [self._chunk({"tool_calls": [fragment]})]
            if delta.get("type") == "thinking_delta":
                return [self._chunk({"reasoning_content": delta.get("thinking", "")})]
            if delta.get("type") == "signature_delta":
                signed = {"type": "thinking", "thinking": "", "signature": delta.get("signature", "")}
                return [self._chunk({"thinking_blocks": [signed]})]
            return []
        if kind == "content_block_start":
            block = payload.get("content_block") or {}
            if block.get("type") == "redacted_thinking":
                redacted = {"type": "redacted_thinking", "data": block.get("data", "")}
                return [self._chunk({"thinking_blocks": [redacted]})]
            if block.get("type") != "tool_use":
                return []
            index = self._tool_index[payload.get("index", 0)] = len(self._tool_index)
            call = {
                "index": index,
                "id": block.get("id", ""),
                "type": "function",
                "function": {"name": block.get("name", ""), "arguments": ""},
            }
            return [self._chunk({"tool_calls": [call]})]
        if kind == "message_start":
            message = payload.get("message") or {}
            self._id = message.get("id", "")
            self._model = message.get("model", "")
            self._usage = dict(message.get("usage") or {})
            first = self._chunk({"role": "assistant", "content": ""})
            if self._usage.get("input_tokens") is not None:
                first.prompt_usage = parse_usage(self._usage)
            return [first]
        if kind == "message_delta":
            # Usage here is cumulative: it replaces, never adds to, what message_start said.
            self._usage.update({k: v for k, v in (payload.get("usage") or {}).items() if v is not None})
            reason = finish_reason((payload.get("delta") or {}).get("stop_reason"))
            return [self._chunk({}, reason)] if reason else []
        if kind == "message_stop":
            self.done = True
            return [ChatChunk(self._id, self._model, self._created, [], usage=parse_usage(self._usage))]
        if kind == "error":
            raise stream_error(payload)
        return []  # ping, content_block_stop
