"""Anthropic Messages request bodies -> the canonical chat request, every field type-checked (400s, never 500s)."""

from __future__ import annotations

from typing import Any

import orjson

from sluicegate.canonical import ChatRequest, Message, ToolCall
from sluicegate.errors import bad_request
from sluicegate.providers.content import CACHE_HINTS, data_url, dumps_arguments
from sluicegate.tokens import count_chat_prompt

_REQUEST_FIELDS = frozenset(
    {"model", "messages", "system", "max_tokens", "stream", "stop_sequences", "temperature", "top_p", "top_k"}
    | {"tools", "tool_choice", "metadata", "thinking", "service_tier", "container", "mcp_servers"}
)


def _load_object(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise bad_request("The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise bad_request("The request body must be a JSON object.")
    return data


def _require(data: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    value = data.get(name)
    if value is None:
        raise bad_request(f"{name}: Field required", param=name)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise bad_request(f"{name}: Input has the wrong type", param=name)
    return value


def _field(block: dict[str, Any], name: str, kind: type, where: str, default: Any = None) -> Any:
    """`block[name]` when it has the type the Messages API gives it; a 400 naming the field otherwise."""
    value = block.get(name, default)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise bad_request(f"{where}.{name}: Input should be a valid {kind.__name__}", param=f"{where}.{name}")
    return value


def _system_content(system: Any) -> str | list[dict[str, Any]]:
    """One string, unless a block carries a prompt-cache breakpoint: then the blocks stay apart."""
    if isinstance(system, str):
        return system
    if isinstance(system, list) and all(isinstance(block, dict) for block in system):
        texts = [_field(block, "text", str, f"system.{i}") for i, block in enumerate(system)]
        if any("cache_control" in block for block in system):
            return [_cached({"type": "text", "text": t}, b) for t, b in zip(texts, system, strict=True)]
        return "\n\n".join(texts)
    raise bad_request("system: Input should be a string or a list of text blocks", param="system")


def _cached(part: dict[str, Any], block: dict[str, Any]) -> dict[str, Any]:
    if "cache_control" in block:
        part["cache_control"] = block["cache_control"]
    return part


def _image_part(block: dict[str, Any], where: str) -> dict[str, Any]:
    source = _field(block, "source", dict, where)
    if source.get("type") == "base64":
        media_type = _field(source, "media_type", str, f"{where}.source")
        url = data_url(media_type, _field(source, "data", str, f"{where}.source"))
        return {"type": "image_url", "image_url": {"url": url}}
    if source.get("type") == "url":
        return {"type": "image_url", "image_url": {"url": _field(source, "url", str, f"{where}.source")}}
    raise bad_request(f"{where}.source: Image blocks need a base64 or url source.", param=f"{where}.source")


def _tool_result_text(content: Any, where: str) -> str | list[dict[str, Any]]:
    if content is None or isinstance(content, str):
        return content or ""
    if not isinstance(content, list) or not all(isinstance(block, dict) for block in content):
        raise bad_request(f"{where}.content: Input should be a string or a list of blocks", param=f"{where}.content")
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        if block.get("type") == "text":
            parts.append({"type": "text", "text": _field(block, "text", str, f"{where}.content.{j}")})
        elif block.get("type") == "image":
            parts.append(_image_part(block, f"{where}.content.{j}"))
    if all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


def _content(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    if all(p["type"] == "text" and "cache_control" not in p for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


def _messages(raw: list[Any]) -> list[Message]:
    messages: list[Message] = []
    for i, turn in enumerate(raw):
        if not isinstance(turn, dict) or turn.get("role") not in ("user", "assistant"):
            raise bad_request(f"messages.{i}.role: Input should be 'user' or 'assistant'", param=f"messages.{i}")
        content = turn.get("content")
        if isinstance(content, str):
            messages.append({"role": turn["role"], "content": content})
            continue
        if not isinstance(content, list):
            raise bad_request(f"messages.{i}.content: Field required", param=f"messages.{i}.content")
        parts: list[dict[str, Any]] = []
        calls: list[ToolCall] = []
        for j, block in enumerate(content):
            kind = block.get("type") if isinstance(block, dict) else None
            where = f"messages.{i}.content.{j}"
            if kind == "text":
                parts.append(_cached({"type": "text", "text": _field(block, "text", str, where)}, block))
            elif kind == "image":
                parts.append(_cached(_image_part(block, where), block))
            elif kind == "tool_use":
                arguments = dumps_arguments(_field(block, "input", dict, where, {}))
                calls.append(
                    {
                        "id": _field(block, "id", str, where),
                        "type": "function",
                        "function": {"name": _field(block, "name", str, where), "arguments": arguments},
                    }
                )
            elif kind == "tool_result":
                # Tool results become tool messages, before any text of the same user turn.
                result: Message = {
                    "role": "tool",
                    "tool_call_id": _field(block, "tool_use_id", str, where),
                    "content": _tool_result_text(block.get("content"), where),  # type: ignore[typeddict-item]
                }
                messages.append(result)
            elif kind in ("thinking", "redacted_thinking"):
                continue  # the gateway's canonical form has no reasoning blocks; earlier thoughts are dropped
            else:
                raise bad_request(f"messages.{i}.content: blocks of type '{kind}' are not supported", param="messages")
        if turn["role"] == "assistant":
            message: Message = {"role": "assistant", "content": _content(parts) if parts else None}  # type: ignore[typeddict-item]
            if calls:
                message["tool_calls"] = calls
            messages.append(message)
        elif parts:
            messages.append({"role": "user", "content": _content(parts)})  # type: ignore[typeddict-item]
    return messages


def _tools(raw: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        raise bad_request("tools: Input should be a valid list", param="tools")
    tools = []
    for i, tool in enumerate(raw):
        if not isinstance(tool, dict) or "input_schema" not in tool:
            kind = tool.get("type") if isinstance(tool, dict) else None
            raise bad_request(f"tools: tools of type '{kind}' cannot be served through this gateway", param="tools")
        where = f"tools.{i}"
        function: dict[str, Any] = {
            "name": _field(tool, "name", str, where),
            "parameters": _field(tool, "input_schema", dict, where),
        }
        if tool.get("description") is not None:
            function["description"] = _field(tool, "description", str, where)
        tools.append(_cached({"type": "function", "function": function}, tool))
    return tools


def _tool_choice(raw: dict[str, Any], params: dict[str, Any]) -> None:
    kind = raw.get("type")
    if kind == "auto":
        params["tool_choice"] = "auto"
    elif kind == "any":
        params["tool_choice"] = "required"
    elif kind == "none":
        params["tool_choice"] = "none"
    elif kind == "tool":
        params["tool_choice"] = {"type": "function", "function": {"name": _field(raw, "name", str, "tool_choice")}}
    else:
        raise bad_request("tool_choice: unknown type", param="tool_choice")
    if raw.get("disable_parallel_tool_use"):
        params["parallel_tool_calls"] = False


def parse_chat_request(body: bytes) -> ChatRequest:
    data = _load_object(body)
    model = _require(data, "model", str)
    raw_messages = _require(data, "messages", list)
    max_tokens = _require(data, "max_tokens", int)
    if max_tokens < 1:
        raise bad_request("max_tokens: Input should be greater than or equal to 1", param="max_tokens")
    unknown = sorted(set(data) - _REQUEST_FIELDS)
    if unknown:
        raise bad_request(f"{unknown[0]}: Extra inputs are not permitted", param=unknown[0])
    messages = _messages(raw_messages)
    if not raw_messages:
        raise bad_request("messages: at least one message is required", param="messages")
    if data.get("system"):
        messages.insert(0, {"role": "system", "content": _system_content(data["system"])})  # type: ignore[typeddict-item]
    params: dict[str, Any] = {}
    for name in ("temperature", "top_p"):
        value = data.get(name)
        if value is not None:
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise bad_request(f"{name}: Input should be a valid number", param=name)
            params[name] = value
    stop = data.get("stop_sequences")
    if stop:
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise bad_request("stop_sequences: Input should be a list of strings", param="stop_sequences")
        params["stop"] = stop
    if data.get("tools"):
        params["tools"] = _tools(data["tools"])
    if data.get("tool_choice") is not None:
        if not isinstance(data["tool_choice"], dict):
            raise bad_request("tool_choice: Input should be an object", param="tool_choice")
        _tool_choice(data["tool_choice"], params)
    if b"cache_control" in body:  # a breakpoint somewhere: OpenAI-format upstreams must have it stripped
        params[CACHE_HINTS] = True
    metadata = data.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise bad_request("metadata: Input should be an object", param="metadata")
    user = metadata.get("user_id")
    return ChatRequest(
        model=model,
        messages=messages,
        stream=data.get("stream") is True,
        include_usage=True,  # Anthropic streams always carry usage
        max_tokens=max_tokens,
        user=str(user) if user else None,
        params=params,
    )


def count_tokens_body(body: bytes) -> bytes:
    """`/v1/messages/count_tokens`: the prompt's tokens as the gateway counts them (cl100k with chat framing)."""
    data = _load_object(body)
    data.setdefault("max_tokens", 1)
    request = parse_chat_request(orjson.dumps(data))
    tokens = count_chat_prompt(request.messages)  # type: ignore[arg-type]
    if request.params.get("tools"):
        tokens += count_chat_prompt([{"role": "system", "content": orjson.dumps(request.params["tools"]).decode()}])
    return orjson.dumps({"input_tokens": tokens})
