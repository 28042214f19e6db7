"""Canonical chunks -> Anthropic's stream events, in its exact sequence; one stateful encoder per stream."""

from __future__ import annotations

from typing import Any

import orjson

from sluicegate.canonical import ChatChunk, ChatRequest, Usage
from sluicegate.errors import GatewayError
from sluicegate.wire.anthropic.request import count_prompt_tokens
from sluicegate.wire.anthropic.response import STOP_REASONS, error_body, message_id, usage_body

_SIGNED = "thinking/signed"  # a thinking block whose signature has come: the next thoughts open another


def _event(name: str, payload: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


class AnthropicStreamEncoder:
    """Canonical chunks -> Anthropic's event sequence. One per stream: it tracks the open content block."""

    __slots__ = (
        "_block",
        "_block_kind",
        "_ended",
        "_prompt_tokens",
        "_request",
        "_started",
        "_stop_reason",
        "_tool_blocks",
        "_usage_sent",
    )

    def __init__(self, request: ChatRequest, prompt_tokens: int | None = None) -> None:
        self._request = request
        self._prompt_tokens = prompt_tokens  # the gateway's count, when the provider states none at the start
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
            # The prompt's tokens as the provider stated them (Anthropic's message_start), else as the
            # gateway counted them; the final counts come in message_delta (cumulative).
            "usage": self._start_usage(chunk),
        }
        return _event("message_start", {"type": "message_start", "message": message})

    def _start_usage(self, chunk: ChatChunk) -> dict[str, Any]:
        if chunk.prompt_usage is not None:
            usage = usage_body(chunk.prompt_usage)
            usage["output_tokens"] = chunk.prompt_usage.output_tokens
            return usage
        if self._prompt_tokens is None:  # nothing counted it yet (no limits applied): count it now, once
            self._prompt_tokens = count_prompt_tokens(self._request)
        return {"input_tokens": self._prompt_tokens, "output_tokens": 0}

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
            if "reasoning_content" in delta or "thinking_blocks" in delta:
                out += self._thinking(delta)
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

    def _thinking(self, delta: dict[str, Any]) -> bytes:
        """Reasoning text opens (or continues) a thinking block; a signature ends it; a redacted block is
        whole in its start event."""
        out = b""
        text = delta.get("reasoning_content")
        if text:
            if self._block_kind != "thinking":
                out += self._open("thinking", {"type": "thinking", "thinking": "", "signature": ""})
            out += self._delta({"type": "thinking_delta", "thinking": text})
        for block in delta.get("thinking_blocks") or ():
            if block.get("type") == "redacted_thinking":
                out += self._open("redacted_thinking", {"type": "redacted_thinking", "data": block.get("data", "")})
            elif block.get("signature"):
                if self._block_kind != "thinking":
                    out += self._open("thinking", {"type": "thinking", "thinking": "", "signature": ""})
                out += self._delta({"type": "signature_delta", "signature": block["signature"]})
                self._block_kind = _SIGNED
        return out

    def _delta(self, delta: dict[str, Any]) -> bytes:
        return _event("content_block_delta", {"type": "content_block_delta", "index": self._block, "delta": delta})

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
