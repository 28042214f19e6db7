"""Canonical responses and errors -> Anthropic Messages bodies (content blocks, stop_reason, usage, errors)."""

from __future__ import annotations

from typing import Any

import orjson

from sluicegate.canonical import ChatResponse, Usage
from sluicegate.errors import GatewayError
from sluicegate.providers.content import tool_arguments

# Canonical finish_reason -> Anthropic stop_reason.
STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"}

# HTTP status -> Anthropic error type (what the SDK maps to its exception classes).
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
    504: "timeout_error",
}


def usage_body(usage: Usage) -> dict[str, Any]:
    """Anthropic's input_tokens excludes cache reads and writes, which it reports beside it."""
    return {
        "input_tokens": max(usage.input_tokens - usage.cached_input_tokens - usage.cache_write_tokens, 0),
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cached_input_tokens,
        "output_tokens": usage.output_tokens,
    }


def message_id(upstream_id: str) -> str:
    return upstream_id if upstream_id.startswith("msg_") else "msg_" + upstream_id.removeprefix("chatcmpl-")


def thinking_blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The reasoning of a message as Anthropic blocks: the provider's own (signed) blocks when it gave them,
    else its reasoning text as one unsigned `thinking` block."""
    blocks = message.get("thinking_blocks")
    if blocks:
        return [
            {"type": "thinking", "thinking": b.get("thinking", ""), "signature": b.get("signature", "")}
            if b.get("type") == "thinking"
            else {"type": "redacted_thinking", "data": b.get("data", "")}
            for b in blocks
        ]
    text = message.get("reasoning_content")
    return [{"type": "thinking", "thinking": text, "signature": ""}] if text else []


def _blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = thinking_blocks(message)
    content = message.get("content")
    if isinstance(content, list):
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    if content or message.get("refusal"):
        blocks.append({"type": "text", "text": content or message.get("refusal") or ""})
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        blocks.append(
            {
                "type": "tool_use",
                "id": call.get("id", ""),
                "name": function.get("name", ""),
                "input": _arguments(function.get("arguments")),
            }
        )
    return blocks


def _arguments(arguments: Any) -> Any:
    try:
        return tool_arguments(arguments)
    except GatewayError:
        return {}  # a model's malformed arguments: Anthropic clients need an object


def chat_response_body(response: ChatResponse, extension: dict[str, Any] | None = None) -> bytes:
    choice: dict[str, Any] = response.choices[0] if response.choices else {"message": {}, "finish_reason": "stop"}
    usage = usage_body(response.usage)
    if extension:
        usage["sluicegate"] = extension
    return orjson.dumps(
        {
            "id": message_id(response.id),
            "type": "message",
            "role": "assistant",
            "model": response.model,
            "content": _blocks(choice.get("message") or {}),
            "stop_reason": STOP_REASONS.get(choice.get("finish_reason") or "stop", "end_turn"),
            "stop_sequence": None,
            "usage": usage,
        }
    )


def error_body(error: GatewayError) -> bytes:
    kind = ERROR_TYPES.get(error.status, "api_error" if error.status >= 500 else "invalid_request_error")
    return orjson.dumps({"type": "error", "error": {"type": kind, "message": error.message}})
