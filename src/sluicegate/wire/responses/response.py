"""Canonical responses -> OpenAI Responses API `response` objects: output items, status and usage."""

from __future__ import annotations

from typing import Any

import orjson

from sluicegate.canonical import ChatResponse, Usage

# Canonical finish_reason -> (status, incomplete_details.reason).
STATUSES: dict[str, tuple[str, str | None]] = {
    "stop": ("completed", None),
    "tool_calls": ("completed", None),
    "length": ("incomplete", "max_output_tokens"),
    "content_filter": ("incomplete", "content_filter"),
}
_PREFIXES = ("chatcmpl-", "msg_", "resp_", "gen-")


def base_id(upstream_id: str) -> str:
    """The upstream's id without its kind prefix: the stem of the response's and its items' ids."""
    for prefix in _PREFIXES:
        if upstream_id.startswith(prefix):
            return upstream_id[len(prefix) :] or "0"
    return upstream_id or "0"


def usage_body(usage: Usage, extension: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {
            "cached_tokens": usage.cached_input_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
        },
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens,
    }
    if extension:
        body["sluicegate"] = extension
    return body


def response_object(
    stem: str,
    model: str,
    created: int,
    status: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None,
    incomplete: str | None = None,
    error: dict[str, Any] | None = None,
    stored: bool = False,
) -> dict[str, Any]:
    return {
        "id": "resp_" + stem,
        "object": "response",
        "created_at": created,
        "status": status,
        "error": error,
        "incomplete_details": {"reason": incomplete} if incomplete else None,
        "model": model,
        "output": output,
        "usage": usage,
        "store": stored,  # kept for previous_response_id and GET /v1/responses/{id} (responses.store)
    }


def message_item(stem: str, parts: list[dict[str, Any]], status: str = "completed") -> dict[str, Any]:
    return {"type": "message", "id": "msg_" + stem, "status": status, "role": "assistant", "content": parts}


def text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def refusal_part(text: str) -> dict[str, Any]:
    return {"type": "refusal", "refusal": text}


def call_item(stem: str, index: int, call_id: str, name: str, arguments: str, status: str) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": f"fc_{stem}_{index}",
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


def reasoning_item(stem: str, text: str, status: str = "completed") -> dict[str, Any]:
    """Another provider's thoughts, as reasoning text (OpenAI's own models give summaries instead)."""
    content = [{"type": "reasoning_text", "text": text}] if text else []
    return {"type": "reasoning", "id": "rs_" + stem, "summary": [], "content": content, "status": status}


def output_items(stem: str, message: dict[str, Any]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    reasoning = message.get("reasoning_content")
    if reasoning:
        items.append(reasoning_item(stem, reasoning))
    content = message.get("content")
    if isinstance(content, list):
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    parts = []
    if content:
        parts.append(text_part(content))
    if message.get("refusal"):
        parts.append(refusal_part(message["refusal"]))
    if parts:
        items.append(message_item(stem, parts))
    for i, call in enumerate(message.get("tool_calls") or ()):
        function = call.get("function") or {}
        items.append(
            call_item(
                stem, i, call.get("id", ""), function.get("name", ""), function.get("arguments") or "", "completed"
            )
        )
    return items


def response_dict(
    response: ChatResponse, extension: dict[str, Any] | None = None, stem: str | None = None, stored: bool = False
) -> dict[str, Any]:
    """The response object; `stem` makes its id (`resp_<stem>`), else the upstream's id does."""
    choice: dict[str, Any] = response.choices[0] if response.choices else {"message": {}, "finish_reason": "stop"}
    stem = stem or base_id(response.id)
    status, incomplete = STATUSES.get(choice.get("finish_reason") or "stop", ("completed", None))
    return response_object(
        stem,
        response.model,
        response.created,
        status,
        output_items(stem, choice.get("message") or {}),
        usage_body(response.usage, extension),
        incomplete,
        stored=stored,
    )


def chat_response_body(response: ChatResponse, extension: dict[str, Any] | None = None) -> bytes:
    return orjson.dumps(response_dict(response, extension))
