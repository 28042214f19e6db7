"""Gemini responses and stream chunks -> canonical (pure functions). usageMetadata is cumulative."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from sluicegate.canonical import ChatChunk, ChatResponse, FinishReason, ToolCall, Usage
from sluicegate.errors import ErrorClass, UpstreamError
from sluicegate.providers.content import dumps_arguments
from sluicegate.providers.gemini.errors import classify_payload
from sluicegate.providers.shape import load_object, upstream_shape

# Gemini finishReason -> canonical. Safety-type stops are content_filter; a malformed or unexpected
# function call is an upstream failure (retryable), never a silent `stop`.
FINISH_REASONS: dict[str, FinishReason] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "LANGUAGE": "content_filter",
    "OTHER": "content_filter",
}
_FAILED_CALLS = frozenset({"MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL", "TOO_MANY_TOOL_CALLS"})


def finish_reason(reason: str | None, called_tools: bool) -> FinishReason | None:
    if reason is None or reason == "FINISH_REASON_UNSPECIFIED":
        return None
    if reason in _FAILED_CALLS:
        raise UpstreamError(ErrorClass.SERVER_ERROR, f"Gemini stopped with {reason}")
    mapped = FINISH_REASONS.get(reason)
    if mapped is None:
        raise UpstreamError(ErrorClass.SERVER_ERROR, f"unknown Gemini finishReason '{reason}'")
    return "tool_calls" if mapped == "stop" and called_tools else mapped


def parse_usage(raw: Mapping[str, Any] | None) -> Usage:
    """promptTokenCount includes cached tokens; thinking tokens are output but not in candidatesTokenCount."""
    if not raw:
        return Usage()
    thoughts = raw.get("thoughtsTokenCount") or 0
    return Usage(
        input_tokens=(raw.get("promptTokenCount") or 0) + (raw.get("toolUsePromptTokenCount") or 0),
        output_tokens=(raw.get("candidatesTokenCount") or 0) + thoughts,
        cached_input_tokens=raw.get("cachedContentTokenCount") or 0,
        reasoning_tokens=thoughts,
    )


def load(body: bytes, what: str) -> dict[str, Any]:
    data = load_object(body, "Gemini", what)
    if isinstance(data.get("error"), dict):
        raise classify_payload(500, data, {})
    return data


def _check_prompt_blocked(data: Mapping[str, Any]) -> None:
    feedback = data.get("promptFeedback") or {}
    reason = feedback.get("blockReason")
    if reason and not data.get("candidates"):
        raise UpstreamError(ErrorClass.CONTENT_POLICY, f"Gemini blocked the prompt ({reason})", status=400)


def _call_id(part: Mapping[str, Any], response_id: str, candidate: int, index: int) -> str:
    given = (part.get("functionCall") or {}).get("id")
    return str(given) if given else f"call_{response_id or 'gemini'}_{candidate}_{index}"


@upstream_shape("Gemini", "response")
def chat_response(body: bytes) -> ChatResponse:
    data = load(body, "response")
    _check_prompt_blocked(data)
    response_id = str(data.get("responseId") or "")
    choices = []
    for position, candidate in enumerate(data.get("candidates") or ()):
        index = candidate.get("index", position)
        text: list[str] = []
        thoughts: list[str] = []
        calls: list[ToolCall] = []
        for part in (candidate.get("content") or {}).get("parts") or ():
            if "functionCall" in part:
                call = part["functionCall"]
                calls.append(
                    {
                        "id": _call_id(part, response_id, index, len(calls)),
                        "type": "function",
                        "function": {"name": call.get("name", ""), "arguments": dumps_arguments(call.get("args"))},
                    }
                )
            elif "text" in part:
                (thoughts if part.get("thought") else text).append(part["text"])
        message: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text or not calls else None}
        if thoughts:
            message["reasoning_content"] = "".join(thoughts)
        if calls:
            message["tool_calls"] = calls
        reason = finish_reason(candidate.get("finishReason"), bool(calls)) or "stop"
        choices.append({"index": index, "message": message, "logprobs": None, "finish_reason": reason})
    return ChatResponse(
        id=response_id,
        model=str(data.get("modelVersion") or ""),
        created=int(time.time()),
        choices=choices,
        usage=parse_usage(data.get("usageMetadata")),
    )


class GeminiStreamDecoder:
    """Each SSE event is a whole GenerateContentResponse holding the next parts; the last has finishReason."""

    __slots__ = ("_created", "_id", "_model", "_started", "_tools", "_usage", "done")

    def __init__(self) -> None:
        self.done = False
        self._id = ""
        self._model = ""
        self._created = int(time.time())
        self._started: set[int] = set()
        self._tools: dict[int, int] = {}  # candidate index -> tool calls seen so far
        self._usage: Mapping[str, Any] | None = None

    @upstream_shape("Gemini", "stream event")
    def decode(self, event: str | None, data: bytes) -> list[ChatChunk]:
        payload = load(data, "stream event")
        _check_prompt_blocked(payload)
        self._id = self._id or str(payload.get("responseId") or "")
        self._model = self._model or str(payload.get("modelVersion") or "")
        if payload.get("usageMetadata"):
            self._usage = payload["usageMetadata"]  # cumulative: the last one is the total
        chunks: list[ChatChunk] = []
        finished = False
        for position, candidate in enumerate(payload.get("candidates") or ()):
            index = candidate.get("index", position)
            delta: dict[str, Any] = {}
            if index not in self._started:
                self._started.add(index)
                delta["role"] = "assistant"
            text: list[str] = []
            thoughts: list[str] = []
            calls: list[dict[str, Any]] = []
            for part in (candidate.get("content") or {}).get("parts") or ():
                if "functionCall" in part:
                    call = part["functionCall"]
                    seen = self._tools.get(index, 0)
                    self._tools[index] = seen + 1
                    calls.append(
                        {
                            "index": seen,
                            "id": _call_id(part, self._id, index, seen),
                            "type": "function",
                            "function": {"name": call.get("name", ""), "arguments": dumps_arguments(call.get("args"))},
                        }
                    )
                elif "text" in part:
                    (thoughts if part.get("thought") else text).append(part["text"])
            if thoughts:
                delta["reasoning_content"] = "".join(thoughts)
            if text:
                delta["content"] = "".join(text)
            if calls:
                delta["tool_calls"] = calls
            reason = finish_reason(candidate.get("finishReason"), self._tools.get(index, 0) > 0)
            if delta or reason:
                choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": reason}
                chunks.append(ChatChunk(self._id, self._model, self._created, [choice]))
            finished = finished or reason is not None
        if finished and not self.done:
            self.done = True
            chunks.append(ChatChunk(self._id, self._model, self._created, [], usage=parse_usage(self._usage)))
        return chunks
