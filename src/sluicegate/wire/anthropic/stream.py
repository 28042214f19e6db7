"""Canonical chunks -> Anthropic's stream events, in its exact sequence; one stateful encoder per stream."""

from __future__ import annotations

from typing import Any

import orjson

from sluicegate.canonical import ChatChunk, ChatRequest, Usage
from sluicegate.errors import GatewayError
from sluicegate.wire.anthropic.response import STOP_REASONS, error_body, message_id, usage_body


def _event(name: str, payload: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


class AnthropicStreamEncoder:
    """Canonical chunks -> Anthropic's event sequence. One per stream: it tracks the open content block."""

    __slots__ = ("_block", "_block_kind", "_ended", "_started", "_stop_reason", "_tool_blocks", "_usage_sent")

    def __init__(self, request: ChatRequest) -> None:
        self._started = False
        self._block = -1  # index of the open content block; -1 when none is open
        self._block_kind: str | None = None
        self._tool_blocks: dict[int, int] = {}  # canonical tool-call index -> content block index
        self._stop_reason: str | None = None
        self._usage_sent = False
        self._ended = False

    def _start(self, chunk: ChatChunk) -> bytes:
        self._started = True
        message: dict[str, Any] = {
            "id": message_id(chunk.id),
            "type": "message",
            "role": "assistant",
            "model": chunk.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            # The real counts come in message_delta (cumulative); upstream formats other than Anthropic's
            # only know them at the end.
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return _event("message_start", {"type": "message_start", "message": message})

    def _open(self, kind: str, block: dict[str, Any]) -> bytes:
        out = self._close()
        first = self._block == -1
        self._block += 1
        self._block_kind = kind
        out += _event(
            "content_block_start", {"type": "content_block_start", "index": self._block, "content_block": block}
        )
        if first:
            out += _event("ping", {"type": "ping"})
        return out

    def _close(self) -> bytes:
        if self._block_kind is None:
            return b""
        self._block_kind = None
        return _event("content_block_stop", {"type": "content_block_stop", "index": self._block})

    def encode(self, chunk: ChatChunk, extension: dict[str, Any] | None = None) -> bytes:
        if self._ended:
            return b""
        out = b"" if self._started else self._start(chunk)
        for choice in chunk.choices:
            if choice.get("index", 0) != 0:
                continue  # Anthropic has one answer per request
            delta = choice.get("delta") or {}
            text = delta.get("content") or delta.get("refusal")
            if text:
                if self._block_kind != "text":
                    out += self._open("text", {"type": "text", "text": ""})
                out += _event(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": self._block,
                        "delta": {"type": "text_delta", "text": text},
                    },
                )
            for call in delta.get("tool_calls") or ():
                out += self._tool_delta(call)
            if choice.get("finish_reason"):
                self._stop_reason = STOP_REASONS.get(choice["finish_reason"], "end_turn")
                out += self._close()
        if chunk.usage is not None:
            out += self._close()
            out += self._message_delta(chunk.usage, extension)
        return out

    def _tool_delta(self, call: dict[str, Any]) -> bytes:
        out = b""
        index = call.get("index", 0)
        function = call.get("function") or {}
        if index not in self._tool_blocks:
            block = {"type": "tool_use", "id": call.get("id", ""), "name": function.get("name", ""), "input": {}}
            out += self._open("tool_use", block)
            self._tool_blocks[index] = self._block
        arguments = function.get("arguments")
        if arguments:
            delta = {"type": "input_json_delta", "partial_json": arguments}
            payload = {"type": "content_block_delta", "index": self._tool_blocks[index], "delta": delta}
            out += _event("content_block_delta", payload)
        return out

    def _message_delta(self, usage: Usage | None, extension: dict[str, Any] | None) -> bytes:
        self._usage_sent = True
        body = usage_body(usage or Usage())
        if extension:
            body["sluicegate"] = extension
        delta = {"stop_reason": self._stop_reason or "end_turn", "stop_sequence": None}
        return _event("message_delta", {"type": "message_delta", "delta": delta, "usage": body})

    def finish(self) -> bytes:
        if self._ended:
            return b""
        self._ended = True
        out = b"" if self._started else self._start(ChatChunk("", "", 0, []))
        out += self._close()
        if not self._usage_sent:
            out += self._message_delta(None, None)
        return out + _event("message_stop", {"type": "message_stop"})

    def error(self, error: GatewayError) -> bytes:
        self._ended = True
        return b"event: error\ndata: " + error_body(error) + b"\n\n"
