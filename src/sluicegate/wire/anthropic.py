"""The Anthropic Messages client format: `/v1/messages` bodies <-> canonical, its SSE events and errors.

Whatever provider serves the request, an `anthropic` SDK client sees Anthropic's shapes: content blocks,
`stop_reason`, `usage` without cached tokens in `input_tokens`, and the exact stream event sequence
message_start, content_block_start, ping, content_block_delta..., content_block_stop, message_delta,
message_stop (or an `error` event).
"""

from __future__ import annotations

from typing import Any

import orjson

from sluicegate.canonical import ChatChunk, ChatRequest, ChatResponse, Message, ToolCall, Usage
from sluicegate.errors import GatewayError, bad_request
from sluicegate.providers.content import CACHE_HINTS, data_url, dumps_arguments, tool_arguments
from sluicegate.tokens import count_chat_prompt

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

_REQUEST_FIELDS = frozenset(
    {"model", "messages", "system", "max_tokens", "stream", "stop_sequences", "temperature", "top_p", "top_k"}
    | {"tools", "tool_choice", "metadata", "thinking", "service_tier", "container", "mcp_servers"}
)


# -- request -----------------------------------------------------------------------------------------


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


# -- response ----------------------------------------------------------------------------------------


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


def _blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
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


class AnthropicWire:
    """The Anthropic client format as one object (see `wire.ClientWire`)."""

    name = "anthropic"
    parse_chat_request = staticmethod(parse_chat_request)
    chat_response_body = staticmethod(chat_response_body)
    error_body = staticmethod(error_body)

    @staticmethod
    def stream_encoder(request: ChatRequest) -> AnthropicStreamEncoder:
        return AnthropicStreamEncoder(request)
