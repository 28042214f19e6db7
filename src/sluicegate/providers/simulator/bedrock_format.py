"""The Bedrock Converse / ConverseStream wire format, with AWS event-stream binary framing and CRC32s."""

from __future__ import annotations

import struct
import zlib
from typing import Any

import orjson

from sluicegate.providers.simulator.asgi import Rejected
from sluicegate.providers.simulator.family import FamilyRequest, Reply, choose_tool

STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "content_filtered",
}
_ERRORS = {
    "rate_limit": (429, "ThrottlingException", "Too many requests, please wait before trying again."),
    "server_error": (500, "InternalServerException", "The server encountered an internal error."),
    "unavailable": (503, "ServiceUnavailableException", "The service is temporarily unavailable."),
    "outage": (503, "ServiceUnavailableException", "The service is temporarily unavailable."),
    "context_window": (400, "ValidationException", "Input is too long for requested model. "),
    "bad_request": (400, "ValidationException", ""),
}


def _header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    return struct.pack("!B", len(raw_name)) + raw_name + b"\x07" + struct.pack("!H", len(raw_value)) + raw_value


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message: prelude (lengths + CRC), headers, payload, message CRC."""
    encoded = b"".join(_header(k, v) for k, v in headers.items())
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack("!II", total, len(encoded))
    prelude += struct.pack("!I", zlib.crc32(prelude))
    message = prelude + encoded + payload
    return message + struct.pack("!I", zlib.crc32(message))


def event(name: str, payload: dict[str, Any]) -> bytes:
    headers = {":event-type": name, ":content-type": "application/json", ":message-type": "event"}
    return frame(headers, orjson.dumps(payload))


def _text(blocks: list[Any]) -> str:
    return "".join(str(b.get("text", "")) for b in blocks if isinstance(b, dict))


def _thought(reasoning: Any) -> dict[str, Any]:
    """A reasoning block sent back, in the canonical shape the signature check reads."""
    if not isinstance(reasoning, dict):
        return {}
    if "redactedContent" in reasoning:
        return {"type": "redacted_thinking", "data": reasoning["redactedContent"]}
    text = reasoning.get("reasoningText") or {}
    return {"type": "thinking", "thinking": text.get("text", ""), "signature": text.get("signature")}


def _reasoning_blocks(reply: Reply) -> list[dict[str, Any]]:
    thinking = reply.thinking
    if thinking is None:
        return []
    text = {"text": thinking.text, "signature": thinking.signature}
    blocks: list[dict[str, Any]] = [{"reasoningContent": {"reasoningText": text}}]
    if thinking.redacted is not None:
        blocks.append({"reasoningContent": {"redactedContent": thinking.redacted}})
    return blocks


def _thinking_budget(body: dict[str, Any]) -> int | None:
    thinking = (body.get("additionalModelRequestFields") or {}).get("thinking")
    if not isinstance(thinking, dict) or thinking.get("type") not in ("enabled", "adaptive"):
        return None
    budget = thinking.get("budget_tokens", 4096)
    return budget if isinstance(budget, int) else 4096


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if body.get("system"):
        messages.append({"role": "system", "content": _text(body["system"])})
    for turn in body.get("messages") or []:
        blocks = turn.get("content") or []
        for block in blocks:
            if isinstance(block, dict) and "toolResult" in block:
                result = block["toolResult"]
                messages.append({"role": "tool", "content": _text(result.get("content") or [])})
        calls = [b["toolUse"] for b in blocks if isinstance(b, dict) and "toolUse" in b]
        thoughts = [_thought(b["reasoningContent"]) for b in blocks if isinstance(b, dict) and "reasoningContent" in b]
        text = _text(blocks)
        if text or calls or thoughts:
            message: dict[str, Any] = {"role": turn.get("role", "user"), "content": text}
            if thoughts:
                message["thinking_blocks"] = thoughts
            if calls:
                message["tool_calls"] = [
                    {
                        "id": c.get("toolUseId", ""),
                        "type": "function",
                        "function": {"name": c.get("name", ""), "arguments": orjson.dumps(c.get("input")).decode()},
                    }
                    for c in calls
                ]
            messages.append(message)
    return messages


def _usage(reply: Reply) -> dict[str, int]:
    plan = reply.plan
    return {
        "inputTokens": plan.prompt_tokens,
        "outputTokens": plan.completion_tokens,
        "totalTokens": plan.prompt_tokens + plan.completion_tokens,
    }


class _Writer:
    def __init__(self, reply: Reply) -> None:
        self._reply = reply
        self._choice = reply.plan.choices[0]
        self._index = len(_reasoning_blocks(reply))  # the answer's block follows the thoughts

    def _thoughts(self) -> bytes:
        thinking = self._reply.thinking
        if thinking is None:
            return b""
        out = b""
        for piece in thinking.pieces:
            out += event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": piece}}})
        signed = {"reasoningContent": {"signature": thinking.signature}}
        out += event("contentBlockDelta", {"contentBlockIndex": 0, "delta": signed})
        out += event("contentBlockStop", {"contentBlockIndex": 0})
        if thinking.redacted is not None:
            redacted = {"reasoningContent": {"redactedContent": thinking.redacted}}
            out += event("contentBlockDelta", {"contentBlockIndex": 1, "delta": redacted})
            out += event("contentBlockStop", {"contentBlockIndex": 1})
        return out

    def opening(self) -> bytes:
        out = event("messageStart", {"role": "assistant"}) + self._thoughts()
        call = self._choice.tool_call
        if call is not None:
            start = {"toolUse": {"toolUseId": call.call_id, "name": call.name}}
            out += event("contentBlockStart", {"contentBlockIndex": self._index, "start": start})
        return out

    def piece(self, index: int) -> bytes:
        piece = self._choice.pieces[index]
        delta = {"text": piece} if self._choice.tool_call is None else {"toolUse": {"input": piece}}
        return event("contentBlockDelta", {"contentBlockIndex": self._index, "delta": delta})

    def closing(self) -> bytes:
        return (
            event("contentBlockStop", {"contentBlockIndex": self._index})
            + event("messageStop", {"stopReason": STOP_REASONS[self._choice.finish_reason]})
            + event("metadata", {"usage": _usage(self._reply), "metrics": {"latencyMs": 0}})
        )


class BedrockFormat:
    name = "bedrock"
    call_prefix = "tooluse_"
    reply_prefix = "bedrock-"
    stream_headers = [(b"content-type", b"application/vnd.amazon.eventstream")]

    def parse(self, body: Any, model: str | None) -> FamilyRequest:
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body["messages"]:
            raise self.error("bad_request", model or "", "A conversation must start with a user message.")
        messages = _messages(body)
        config = body.get("toolConfig") or {}
        functions = [
            (spec.get("name", ""), (spec.get("inputSchema") or {}).get("json"))
            for spec in (t.get("toolSpec") or {} for t in config.get("tools") or [])
        ]
        choice = config.get("toolChoice") or {"auto": {}}
        forced = (choice.get("tool") or {}).get("name")
        mode = "required" if "any" in choice else "auto"
        tool = choose_tool(functions, forced, mode, messages)
        max_tokens = (body.get("inferenceConfig") or {}).get("maxTokens")
        return FamilyRequest(model or "", messages, False, max_tokens, tool, thinking_budget=_thinking_budget(body))

    def whole(self, reply: Reply) -> bytes:
        choice = reply.plan.choices[0]
        call = choice.tool_call
        content = (
            [{"text": choice.text}]
            if call is None
            else [{"toolUse": {"toolUseId": call.call_id, "name": call.name, "input": orjson.loads(call.arguments)}}]
        )
        return orjson.dumps(
            {
                "output": {"message": {"role": "assistant", "content": _reasoning_blocks(reply) + content}},
                "stopReason": STOP_REASONS[choice.finish_reason],
                "usage": _usage(reply),
                "metrics": {"latencyMs": 0},
            }
        )

    def writer(self, reply: Reply) -> _Writer:
        return _Writer(reply)

    def malformed(self) -> bytes:
        good = event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "x"}})
        return good[:-4] + b"\x00\x00\x00\x00"  # a frame whose message CRC does not match

    def error(self, kind: str, model: str, detail: str = "", retry_after: float | None = None) -> Rejected:
        status, name, message = _ERRORS[kind]
        headers = [(b"x-amzn-errortype", f"{name}:http://internal.amazon.com/coral/com.amazon.bedrock/".encode())]
        return Rejected(status, orjson.dumps({"message": message + detail}), headers)
