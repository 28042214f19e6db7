"""Bedrock Converse responses and ConverseStream events -> canonical (pure functions)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from typing import Any

from sluicegate.canonical import ChatChunk, ChatResponse, FinishReason, ThinkingBlock, ToolCall, Usage
from sluicegate.errors import ErrorClass, UpstreamError, scrub
from sluicegate.providers.content import dumps_arguments
from sluicegate.providers.shape import load_object, upstream_shape

FINISH_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}

# Bedrock exception names (x-amzn-ErrorType, or :exception-type inside a stream) -> error class.
EXCEPTIONS: dict[str, ErrorClass] = {
    "ThrottlingException": ErrorClass.RATE_LIMITED,
    "ServiceQuotaExceededException": ErrorClass.RATE_LIMITED,
    "ServiceUnavailableException": ErrorClass.OVERLOADED,
    "ModelNotReadyException": ErrorClass.OVERLOADED,
    "ModelTimeoutException": ErrorClass.TIMEOUT,
    "InternalServerException": ErrorClass.SERVER_ERROR,
    "ModelErrorException": ErrorClass.SERVER_ERROR,
    "ModelStreamErrorException": ErrorClass.SERVER_ERROR,
    "ResourceNotFoundException": ErrorClass.SERVER_ERROR,
    "AccessDeniedException": ErrorClass.AUTH,
    "UnrecognizedClientException": ErrorClass.AUTH,
    "ExpiredTokenException": ErrorClass.AUTH,
    "ValidationException": ErrorClass.BAD_REQUEST,
}


def exception_class(name: str) -> ErrorClass | None:
    """Stream exception types are camelCase (`throttlingException`); HTTP ones are PascalCase."""
    return EXCEPTIONS.get(name[:1].upper() + name[1:]) if name else None


def finish_reason(stop_reason: str | None) -> FinishReason | None:
    if stop_reason is None:
        return None
    mapped = FINISH_REASONS.get(stop_reason)
    if mapped is None:
        raise UpstreamError(ErrorClass.SERVER_ERROR, f"unknown Bedrock stopReason '{stop_reason}'")
    return mapped


def parse_usage(raw: Mapping[str, Any] | None) -> Usage:
    """inputTokens excludes cache reads and writes (as Anthropic's does); canonical input counts them."""
    if not raw:
        return Usage()
    cached = raw.get("cacheReadInputTokens") or 0
    written = raw.get("cacheWriteInputTokens") or 0
    return Usage(
        input_tokens=(raw.get("inputTokens") or 0) + cached + written,
        output_tokens=raw.get("outputTokens") or 0,
        cached_input_tokens=cached,
        cache_write_tokens=written,
    )


def load(body: bytes, what: str) -> dict[str, Any]:
    return load_object(body, "Bedrock", what)


def _thinking_block(reasoning: Mapping[str, Any]) -> ThinkingBlock:
    if "redactedContent" in reasoning:
        return {"type": "redacted_thinking", "data": str(reasoning["redactedContent"])}
    text = reasoning.get("reasoningText") or {}
    return {"type": "thinking", "thinking": text.get("text", ""), "signature": text.get("signature", "")}


@upstream_shape("Bedrock", "response")
def chat_response(body: bytes) -> ChatResponse:
    data = load(body, "response")
    content = ((data.get("output") or {}).get("message") or {}).get("content") or ()
    text: list[str] = []
    calls: list[ToolCall] = []
    thoughts: list[ThinkingBlock] = []
    for block in content:
        if "reasoningContent" in block:
            thoughts.append(_thinking_block(block["reasoningContent"]))
        elif "text" in block:
            text.append(block["text"])
        elif "toolUse" in block:
            use = block["toolUse"]
            calls.append(
                {
                    "id": use.get("toolUseId", ""),
                    "type": "function",
                    "function": {"name": use.get("name", ""), "arguments": dumps_arguments(use.get("input"))},
                }
            )
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text or not calls else None}
    if thoughts:
        message["reasoning_content"] = "".join(t.get("thinking", "") for t in thoughts)
        message["thinking_blocks"] = thoughts
    if calls:
        message["tool_calls"] = calls
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason(data.get("stopReason"))}
    return ChatResponse(
        id="bedrock-" + secrets.token_hex(12),
        model="",
        created=int(time.time()),
        choices=[choice],
        usage=parse_usage(data.get("usage")),
    )


def _reasoning_delta(reasoning: Mapping[str, Any]) -> dict[str, Any]:
    """A ConverseStream reasoning delta: text, a signature (ends the block) or a redacted block."""
    if "text" in reasoning:
        return {"reasoning_content": reasoning["text"]}
    if "signature" in reasoning:
        return {"thinking_blocks": [{"type": "thinking", "thinking": "", "signature": reasoning["signature"]}]}
    return {"thinking_blocks": [{"type": "redacted_thinking", "data": str(reasoning.get("redactedContent", ""))}]}


class BedrockStreamDecoder:
    """ConverseStream events (already unframed): one canonical tool index per toolUse block."""

    __slots__ = ("_created", "_id", "_tool_index", "done")

    def __init__(self) -> None:
        self.done = False
        self._id = "bedrock-" + secrets.token_hex(12)
        self._created = int(time.time())
        self._tool_index: dict[int, int] = {}

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> ChatChunk:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return ChatChunk(self._id, "", self._created, [choice])

    @upstream_shape("Bedrock", "stream event")
    def decode(self, event: str | None, data: bytes) -> list[ChatChunk]:
        if event and event.startswith("exception:"):
            name = event.partition(":")[2]
            message = str(load(data, "stream event").get("message") or name) if data else name
            raise UpstreamError(exception_class(name) or ErrorClass.SERVER_ERROR, scrub(message))
        payload = load(data, "stream event")
        if event == "contentBlockDelta":
            delta = payload.get("delta") or {}
            if "text" in delta:
                return [self._chunk({"content": delta["text"]})]
            if "toolUse" in delta:
                index = self._tool_index.get(payload.get("contentBlockIndex", 0), 0)
                fragment = {"index": index, "function": {"arguments": delta["toolUse"].get("input", "")}}
                return [self._chunk({"tool_calls": [fragment]})]
            reasoning = delta.get("reasoningContent")
            if reasoning:
                return [self._chunk(_reasoning_delta(reasoning))]
            return []
        if event == "contentBlockStart":
            use = (payload.get("start") or {}).get("toolUse")
            if not use:
                return []
            index = self._tool_index[payload.get("contentBlockIndex", 0)] = len(self._tool_index)
            call = {
                "index": index,
                "id": use.get("toolUseId", ""),
                "type": "function",
                "function": {"name": use.get("name", ""), "arguments": ""},
            }
            return [self._chunk({"tool_calls": [call]})]
        if event == "messageStart":
            return [self._chunk({"role": "assistant", "content": ""})]
        if event == "messageStop":
            return [self._chunk({}, finish_reason(payload.get("stopReason")))]
        if event == "metadata":
            self.done = True
            return [ChatChunk(self._id, "", self._created, [], usage=parse_usage(payload.get("usage")))]
        return []  # contentBlockStop
