"""Anthropic Messages request bodies -> the canonical chat request, every field type-checked (400s, never 500s)."""

from __future__ import annotations

from typing import Any

import orjson

from sluicegate.canonical import ChatRequest, Message, ThinkingBlock, ToolCall
from sluicegate.errors import bad_request
from sluicegate.providers.content import CACHE_HINTS, REASONING_HISTORY, data_url, dumps_arguments
from sluicegate.tokens import count_chat_prompt
from sluicegate.wire.bounds import MAX_TOKENS, load_object

_REQUEST_FIELDS = frozenset(
    {"model", "messages", "system", "max_tokens", "stream", "stop_sequences", "temperature", "top_p", "top_k"}
    | {"tools", "tool_choice", "metadata", "thinking", "service_tier", "container", "mcp_servers"}
)


def _load_object(body: bytes) -> dict[str, Any]:
    return load_object(body, "The request body is not valid JSON.")


def _require(data: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    value = data.get(name)
    if value is None:
        raise bad_request(f"{name}: Field required", param=name)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise bad_request(f"{name}: Input has the wrong type", param=name)
    return value


_TYPE_NAMES = {str: "string", int: "integer", bool: "boolean", dict: "object", list: "list"}


def _field(block: dict[str, Any], name: str, kind: type, where: str, default: Any = None) -> Any:
    """`block[name]` when it has the type the Messages API gives it; a 400 naming the field otherwise."""
    value = block.get(name, default)
    if value is None:
        raise bad_request(f"{where}.{name}: Field required", param=f"{where}.{name}")
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        expected = _TYPE_NAMES.get(kind, kind.__name__)
        raise bad_request(f"{where}.{name}: Input should be a valid {expected}", param=f"{where}.{name}")
    return value


def _optional(data: dict[str, Any], name: str, kind: type | tuple[type, ...], what: str, where: str = "") -> Any:
    """`data[name]` if present and not null, when it has the expected type; a 400 naming the field otherwise."""
    value = data.get(name)
    if value is not None and (not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool)):
        param = f"{where}.{name}" if where else name
        raise bad_request(f"{param}: Input should be {what}", param=param)
    return value


def _cache_control(block: dict[str, Any], where: str) -> None:
    control = _optional(block, "cache_control", dict, "an object", where)
    if control is not None:
        _field(control, "type", str, f"{where}.cache_control")


def _system_content(system: Any) -> str | list[dict[str, Any]]:
    """One string, unless a block carries a prompt-cache breakpoint: then the blocks stay apart."""
    if isinstance(system, str):
        return system
    if isinstance(system, list) and all(isinstance(block, dict) for block in system):
        texts = [_field(block, "text", str, f"system.{i}") for i, block in enumerate(system)]
        if any(block.get("cache_control") is not None for block in system):
            return [
                _cached({"type": "text", "text": t}, b, f"system.{i}")
                for i, (t, b) in enumerate(zip(texts, system, strict=True))
            ]
        return "\n\n".join(texts)
    raise bad_request("system: Input should be a string or a list of text blocks", param="system")


def _cached(part: dict[str, Any], block: dict[str, Any], where: str = "") -> dict[str, Any]:
    _cache_control(block, where or "block")
    if block.get("cache_control") is not None:
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
        _cache_control(block, f"{where}.content.{j}")
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


def _thinking_block(block: dict[str, Any], kind: str, where: str) -> ThinkingBlock:
    """An earlier turn's reasoning, kept whole: Anthropic checks its signature when it comes back."""
    if kind == "thinking":
        return {
            "type": "thinking",
            "thinking": _field(block, "thinking", str, where),
            "signature": _field(block, "signature", str, where, ""),
        }
    return {"type": "redacted_thinking", "data": _field(block, "data", str, where)}


def _messages(raw: list[Any]) -> list[Message]:
    messages: list[Message] = []
    for i, turn in enumerate(raw):
        if not isinstance(turn, dict):
            raise bad_request(f"messages.{i}: Input should be an object", param=f"messages.{i}")
        if turn.get("role") not in ("user", "assistant"):
            raise bad_request(f"messages.{i}.role: Input should be 'user' or 'assistant'", param=f"messages.{i}.role")
        content = turn.get("content")
        if isinstance(content, str):
            messages.append({"role": turn["role"], "content": content})
            continue
        if content is None:
            raise bad_request(f"messages.{i}.content: Field required", param=f"messages.{i}.content")
        if not isinstance(content, list):
            raise bad_request(
                f"messages.{i}.content: Input should be a string or a list of blocks", param=f"messages.{i}.content"
            )
        parts: list[dict[str, Any]] = []
        calls: list[ToolCall] = []
        thoughts: list[ThinkingBlock] = []
        for j, block in enumerate(content):
            where = f"messages.{i}.content.{j}"
            if not isinstance(block, dict):
                raise bad_request(f"{where}: Input should be an object", param=where)
            kind = _field(block, "type", str, where)
            if kind == "text":
                parts.append(_cached({"type": "text", "text": _field(block, "text", str, where)}, block, where))
            elif kind == "image":
                parts.append(_cached(_image_part(block, where), block, where))
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
                _optional(block, "is_error", bool, "a valid boolean", where)
                _cache_control(block, where)
                # Tool results become tool messages, before any text of the same user turn.
                result: Message = {
                    "role": "tool",
                    "tool_call_id": _field(block, "tool_use_id", str, where),
                    "content": _tool_result_text(block.get("content"), where),  # type: ignore[typeddict-item]
                }
                messages.append(result)
            elif kind in ("thinking", "redacted_thinking"):
                if turn["role"] != "assistant":
                    raise bad_request(f"{where}: {kind} blocks belong to assistant turns", param=where)
                thoughts.append(_thinking_block(block, kind, where))
            else:
                shown = kind[:40]
                raise bad_request(f"{where}.type: blocks of type '{shown}' are not supported", param=f"{where}.type")
        if turn["role"] == "assistant":
            message: Message = {"role": "assistant", "content": _content(parts) if parts else None}  # type: ignore[typeddict-item]
            if thoughts:
                message["thinking_blocks"] = thoughts
                message["reasoning_content"] = "".join(t.get("thinking", "") for t in thoughts)
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
        where = f"tools.{i}"
        if not isinstance(tool, dict):
            raise bad_request(f"{where}: Input should be an object", param=where)
        if "input_schema" not in tool:
            kind = str(tool.get("type"))[:40]
            raise bad_request(f"{where}: tools of type '{kind}' cannot be served through this gateway", param=where)
        function: dict[str, Any] = {
            "name": _field(tool, "name", str, where),
            "parameters": _field(tool, "input_schema", dict, where),
        }
        if tool.get("description") is not None:
            function["description"] = _field(tool, "description", str, where)
        tools.append(_cached({"type": "function", "function": function}, tool, where))
    return tools


def _thinking(data: dict[str, Any]) -> dict[str, Any] | None:
    """`thinking`: `{"type": "enabled", "budget_tokens": N}` (N >= 1024, below max_tokens), `disabled`, or
    `adaptive`; passed on as it is (providers map it: docs/providers.md)."""
    thinking = _optional(data, "thinking", dict, "an object")
    if thinking is None:
        return None
    kind = _field(thinking, "type", str, "thinking")
    if kind == "enabled":
        budget = _field(thinking, "budget_tokens", int, "thinking")
        if budget < 1024:
            raise bad_request("thinking.budget_tokens: Input should be greater than or equal to 1024", "thinking")
        if budget >= data["max_tokens"]:
            raise bad_request("`max_tokens` must be greater than `thinking.budget_tokens`", "thinking.budget_tokens")
    elif kind not in ("disabled", "adaptive"):
        raise bad_request("thinking.type: Input should be 'enabled', 'disabled' or 'adaptive'", param="thinking.type")
    checked: dict[str, Any] = thinking
    return checked


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
    if _optional(raw, "disable_parallel_tool_use", bool, "a valid boolean", "tool_choice"):
        params["parallel_tool_calls"] = False


def parse_chat_request(body: bytes) -> ChatRequest:
    data = _load_object(body)
    return _chat_request(data, b"cache_control" in body)


def _chat_request(data: dict[str, Any], cache_hints: bool) -> ChatRequest:
    """The whole body checked in one pass, in the order Anthropic reports problems: required fields, unknown
    fields, then each field's shape; every 400 names the field (`messages.0.content.1.text`)."""
    model = _require(data, "model", str)
    raw_messages = _require(data, "messages", list)
    max_tokens = _require(data, "max_tokens", int)
    if max_tokens < 1:
        raise bad_request("max_tokens: Input should be greater than or equal to 1", param="max_tokens")
    if max_tokens > MAX_TOKENS:
        raise bad_request(f"max_tokens: Input should be less than or equal to {MAX_TOKENS}", param="max_tokens")
    unknown = sorted(set(data) - _REQUEST_FIELDS)
    if unknown:
        raise bad_request(f"{unknown[0]}: Extra inputs are not permitted", param=unknown[0])
    stream = _optional(data, "stream", bool, "a valid boolean")
    _optional(data, "top_k", int, "a valid integer")
    thinking = _thinking(data)
    _optional(data, "service_tier", str, "a valid string")
    _optional(data, "container", (str, dict), "a string or an object")
    _optional(data, "mcp_servers", list, "a valid list")
    messages = _messages(raw_messages)
    if not raw_messages:
        raise bad_request("messages: at least one message is required", param="messages")
    if data.get("system") is not None:
        system = _system_content(data["system"])
        if system:
            messages.insert(0, {"role": "system", "content": system})  # type: ignore[typeddict-item]
    params: dict[str, Any] = {}
    for name in ("temperature", "top_p"):
        value = _optional(data, name, (int, float), "a valid number")
        if value is not None:
            params[name] = value
    stop = data.get("stop_sequences")
    if stop is not None:
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise bad_request("stop_sequences: Input should be a list of strings", param="stop_sequences")
        if stop:
            params["stop"] = stop
    if data.get("tools") is not None:
        tools = _tools(data["tools"])
        if tools:
            params["tools"] = tools
    if data.get("tool_choice") is not None:
        if not isinstance(data["tool_choice"], dict):
            raise bad_request("tool_choice: Input should be an object", param="tool_choice")
        _tool_choice(data["tool_choice"], params)
    if cache_hints:  # a breakpoint somewhere: OpenAI-format upstreams must have it stripped
        params[CACHE_HINTS] = True
    if thinking is not None:
        params["thinking"] = thinking
    if any("thinking_blocks" in m for m in messages):  # other upstream formats must have them stripped
        params[REASONING_HISTORY] = True
    metadata = _optional(data, "metadata", dict, "an object") or {}
    user = _optional(metadata, "user_id", str, "a valid string", "metadata")
    return ChatRequest(
        model=model,
        messages=messages,
        stream=stream is True,
        include_usage=True,  # Anthropic streams always carry usage
        max_tokens=max_tokens,
        user=user or None,
        params=params,
    )


# What counting takes; `max_tokens` too, for clients that send their Messages body as it is.
_COUNT_FIELDS = frozenset(
    {"model", "messages", "system", "tools", "tool_choice", "thinking", "mcp_servers", "max_tokens"}
)


def parse_count_tokens_request(body: bytes) -> ChatRequest:
    """A `/v1/messages/count_tokens` body, checked as a Messages request is (without `max_tokens`, which
    counting does not take)."""
    data = _load_object(body)
    unknown = sorted(set(data) - _COUNT_FIELDS)
    if unknown:
        raise bad_request(f"{unknown[0]}: Extra inputs are not permitted", param=unknown[0])
    return _chat_request({"max_tokens": 1, **data}, False)


def count_prompt_tokens(request: ChatRequest) -> int:
    """The prompt's tokens as the gateway counts them (cl100k with chat framing), tools included."""
    tokens = count_chat_prompt(request.messages)  # type: ignore[arg-type]
    if request.params.get("tools"):
        tokens += count_chat_prompt([{"role": "system", "content": orjson.dumps(request.params["tools"]).decode()}])
    return tokens


def count_tokens_body(body: bytes) -> bytes:
    """`/v1/messages/count_tokens` answered in one step: the body in, the count's body out."""
    return orjson.dumps({"input_tokens": count_prompt_tokens(parse_count_tokens_request(body))})
