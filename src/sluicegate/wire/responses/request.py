"""OpenAI Responses API request bodies (`POST /v1/responses`) -> the canonical chat request.

Every field is checked; a problem is a 400 in OpenAI's error shape naming the field (`input[2].call_id`).
What the gateway cannot serve (stored responses, built-in OpenAI tools) is refused with a reason, never
silently ignored.
"""

from __future__ import annotations

from typing import Any

from sluicegate.canonical import ChatRequest, Message, ToolCall
from sluicegate.errors import GatewayError, bad_request
from sluicegate.wire.bounds import MAX_TOKENS, load_object
from sluicegate.wire.openai import json_kind

_KNOWN = frozenset(
    {"model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls", "text", "reasoning"}
    | {"max_output_tokens", "temperature", "top_p", "top_logprobs", "stream", "stream_options", "store", "user"}
    | {"metadata", "include", "truncation", "service_tier", "safety_identifier", "prompt_cache_key"}
    | {"previous_response_id", "conversation", "prompt", "background", "max_tool_calls", "prompt_cache_retention"}
)

# Stateful features need responses kept by the gateway, which it does not do (docs/providers.md).
_STATEFUL = {
    "previous_response_id": "'previous_response_id' needs stored responses, which this gateway's configuration "
    "turns off (responses.store). Send the whole conversation in 'input' (earlier output items can be passed "
    "back as they are).",
    "conversation": "'conversation' is not supported: this gateway does not store conversations. "
    "Send the whole conversation in 'input'.",
    "prompt": "'prompt' (stored prompt templates) is not supported by this gateway; send 'instructions' and 'input'.",
}

# Built-in OpenAI tools: run by OpenAI's Responses API itself, which this gateway does not call.
_BUILT_IN_TOOLS = frozenset(
    {"web_search", "web_search_preview", "web_search_2025_08_26", "web_search_preview_2025_03_11", "file_search"}
    | {"computer_use_preview", "computer_use", "code_interpreter", "image_generation", "mcp", "local_shell"}
    | {"shell", "apply_patch", "custom", "tool_search", "namespace"}
)

_EFFORTS = frozenset({"none", "minimal", "low", "medium", "high", "xhigh"})


_NAMES = {str: "a string", bool: "a boolean", int: "an integer", dict: "an object", list: "an array"}


def _typed(value: Any, kind: type | tuple[type, ...], param: str) -> Any:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
    if not ok:
        expected = " or ".join(_NAMES.get(k, "a number") for k in kinds)
        got = json_kind(value)
        raise bad_request(f"Invalid type for '{param}': expected {expected}, but got {got} instead.", param)
    return value


def _get(data: dict[str, Any], name: str, kind: type | tuple[type, ...], where: str = "") -> Any:
    """`data[name]` (None when absent or null), type-checked."""
    value = data.get(name)
    param = f"{where}.{name}" if where else name
    return None if value is None else _typed(value, kind, param)


def _need(data: dict[str, Any], name: str, kind: type | tuple[type, ...], where: str = "") -> Any:
    param = f"{where}.{name}" if where else name
    if data.get(name) is None:
        raise bad_request(f"Missing required parameter: '{param}'.", param)
    return _typed(data[name], kind, param)


def _unsupported(param: str, value: str, what: str) -> GatewayError:
    return bad_request(f"Invalid value for '{param}': '{value[:40]}'. {what}", param, code="unsupported_value")


def _input_part(part: Any, where: str) -> dict[str, Any]:
    """One part of a message's content -> a canonical content part."""
    _typed(part, dict, where)
    kind = _need(part, "type", str, where)
    if kind in ("input_text", "output_text", "text"):
        return {"type": "text", "text": _need(part, "text", str, where)}
    if kind == "refusal":
        return {"type": "refusal", "refusal": _need(part, "refusal", str, where)}
    if kind == "input_image":
        url = _get(part, "image_url", str, where)
        if url is None:
            raise bad_request(
                f"'{where}.image_url' is required: images by 'file_id' need OpenAI's file store, which this "
                "gateway does not use. Send the image as a URL or a data URL.",
                f"{where}.image_url",
            )
        image: dict[str, Any] = {"url": url}
        detail = _get(part, "detail", str, where)
        if detail is not None:
            image["detail"] = detail
        return {"type": "image_url", "image_url": image}
    if kind == "input_file":
        data = _get(part, "file_data", str, where)
        if data is None:
            raise bad_request(
                f"'{where}.file_data' is required: files by 'file_id' or 'file_url' are not fetched by this gateway.",
                f"{where}.file_data",
            )
        file: dict[str, Any] = {"file_data": data}
        name = _get(part, "filename", str, where)
        if name is not None:
            file["filename"] = name
        return {"type": "file", "file": file}
    raise _unsupported(f"{where}.type", kind, "Supported values are: 'input_text', 'input_image', 'input_file'.")


def _content(raw: Any, where: str) -> str | list[dict[str, Any]]:
    if isinstance(raw, str):
        return raw
    _typed(raw, (str, list), where)
    parts = [_input_part(part, f"{where}[{j}]") for j, part in enumerate(raw)]
    if all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


def _message(item: dict[str, Any], where: str) -> Message:
    role = _need(item, "role", str, where)
    if role not in ("user", "assistant", "system", "developer"):
        raise bad_request(
            f"Invalid value for '{where}.role': '{role[:40]}'. "
            "Supported values are: 'user', 'assistant', 'system', 'developer'.",
            f"{where}.role",
        )
    content = _content(item.get("content"), f"{where}.content") if item.get("content") is not None else None
    if content is None:
        raise bad_request(f"Missing required parameter: '{where}.content'.", f"{where}.content")
    if role == "assistant" and isinstance(content, list):
        refusals = [p["refusal"] for p in content if p["type"] == "refusal"]
        text = "".join(p.get("text", "") for p in content if p["type"] == "text")
        message: Message = {"role": "assistant", "content": text or None}
        if refusals:
            message["refusal"] = "".join(refusals)
        return message
    if isinstance(content, list) and any(p["type"] == "refusal" for p in content):
        raise bad_request(f"'{where}.content': only assistant messages carry refusals.", f"{where}.content")
    return {"role": role, "content": content}  # type: ignore[typeddict-item]


def _tool_output(raw: Any, where: str) -> str | list[dict[str, Any]]:
    if isinstance(raw, str):
        return raw
    if raw is None:
        raise bad_request(f"Missing required parameter: '{where}'.", where)
    return _content(raw, where)


def _append_call(messages: list[Message], call: ToolCall) -> None:
    """Function calls follow the assistant turn they belong to (the output order: message, then calls)."""
    last = messages[-1] if messages else None
    if last is not None and last["role"] == "assistant":
        last.setdefault("tool_calls", []).append(call)
    else:
        messages.append({"role": "assistant", "content": None, "tool_calls": [call]})


def _input(raw: Any) -> list[Message]:
    if isinstance(raw, str):
        return [{"role": "user", "content": raw}]
    _typed(raw, (str, list), "input")
    messages: list[Message] = []
    for i, item in enumerate(raw):
        where = f"input[{i}]"
        _typed(item, dict, where)
        kind = _get(item, "type", str, where) or "message"
        if kind == "message":
            message = _message(item, where)
            previous = messages[-1] if messages else None
            # One assistant turn may be several output messages: they are one canonical turn.
            if (
                message["role"] == "assistant"
                and previous is not None
                and previous["role"] == "assistant"
                and not previous.get("tool_calls")
            ):
                joined = (previous.get("content") or "") + (message.get("content") or "")  # type: ignore[operator]
                previous["content"] = joined or None
                continue
            messages.append(message)
        elif kind == "function_call":
            call: ToolCall = {
                "id": _need(item, "call_id", str, where),
                "type": "function",
                "function": {
                    "name": _need(item, "name", str, where),
                    "arguments": _need(item, "arguments", str, where),
                },
            }
            _append_call(messages, call)
        elif kind == "function_call_output":
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": _need(item, "call_id", str, where),
                    "content": _tool_output(item.get("output"), f"{where}.output"),  # type: ignore[typeddict-item]
                }
            )
        elif kind == "reasoning":
            _reasoning_item(item, where, messages)
        elif kind == "item_reference":
            raise _unsupported(
                f"{where}.type",
                kind,
                "Item references are not supported: pass the item itself (or previous_response_id).",
            )
        else:
            raise _unsupported(
                f"{where}.type",
                kind,
                "Supported input items are 'message', 'function_call', 'function_call_output' and 'reasoning'.",
            )
    return messages


def _reasoning_item(item: dict[str, Any], where: str, messages: list[Message]) -> None:
    """A reasoning item passed back from an earlier response: checked, then left out. The canonical
    conversation carries no reasoning yet, so models see earlier turns without their thoughts."""
    summary = _get(item, "summary", list, where) or []
    for j, part in enumerate(summary):
        _typed(part, dict, f"{where}.summary[{j}]")
        _need(part, "text", str, f"{where}.summary[{j}]")


def _tools(raw: Any) -> list[dict[str, Any]]:
    _typed(raw, list, "tools")
    tools = []
    for i, tool in enumerate(raw):
        where = f"tools[{i}]"
        _typed(tool, dict, where)
        kind = _need(tool, "type", str, where)
        if kind != "function":
            if kind in _BUILT_IN_TOOLS:
                raise bad_request(
                    f"The built-in tool '{kind[:40]}' ({where}) runs inside OpenAI's own Responses API, which this "
                    "gateway does not relay to; only 'function' tools can be served.",
                    f"{where}.type",
                    code="unsupported_tool",
                )
            raise _unsupported(f"{where}.type", kind, "Supported values are: 'function'.")
        function: dict[str, Any] = {"name": _need(tool, "name", str, where)}
        description = _get(tool, "description", str, where)
        if description is not None:
            function["description"] = description
        parameters = _get(tool, "parameters", dict, where)
        if parameters is not None:
            function["parameters"] = parameters
        strict = _get(tool, "strict", bool, where)
        if strict is not None:
            function["strict"] = strict
        tools.append({"type": "function", "function": function})
    return tools


def _tool_choice(raw: Any) -> Any:
    if isinstance(raw, str):
        if raw not in ("auto", "none", "required"):
            raise _unsupported("tool_choice", raw, "Supported values are: 'auto', 'none', 'required'.")
        return raw
    _typed(raw, (str, dict), "tool_choice")
    kind = _need(raw, "type", str, "tool_choice")
    if kind == "function":
        return {"type": "function", "function": {"name": _need(raw, "name", str, "tool_choice")}}
    raise _unsupported("tool_choice.type", kind, "Only a 'function' can be forced through this gateway.")


def _text_format(text: dict[str, Any], params: dict[str, Any]) -> None:
    fmt = _get(text, "format", dict, "text")
    if fmt is not None:
        kind = _need(fmt, "type", str, "text.format")
        if kind == "json_schema":
            schema: dict[str, Any] = {
                "name": _need(fmt, "name", str, "text.format"),
                "schema": _need(fmt, "schema", dict, "text.format"),
            }
            for name, field_kind in (("strict", bool), ("description", str)):
                value = _get(fmt, name, field_kind, "text.format")
                if value is not None:
                    schema[name] = value
            params["response_format"] = {"type": "json_schema", "json_schema": schema}
        elif kind == "json_object":
            params["response_format"] = {"type": "json_object"}
        elif kind != "text":
            raise _unsupported("text.format.type", kind, "Supported values are: 'text', 'json_object', 'json_schema'.")
    verbosity = _get(text, "verbosity", str, "text")
    if verbosity is not None:
        params["verbosity"] = verbosity


def load_body(body: bytes) -> dict[str, Any]:
    return load_object(body, "We could not parse the JSON body of your request. The body must be a JSON object.")


def input_items(raw: Any) -> list[dict[str, Any]]:
    """`input` as a list of items (a string is one user message), for storing and for chaining."""
    if isinstance(raw, str):
        return [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": raw}]}]
    _typed(raw, (str, list), "input")
    return list(raw)


def parse_responses_request(body: bytes) -> ChatRequest:
    return responses_request(load_body(body))


def responses_request(data: dict[str, Any]) -> ChatRequest:
    """A Responses body (parsed JSON) as the canonical request; `previous_response_id` must have been resolved
    (its conversation put in front of `input`) by the caller, which alone knows the stored responses."""
    model = _need(data, "model", str)
    unknown = sorted(set(data) - _KNOWN)
    if unknown:
        raise bad_request(f"Unknown parameter: '{unknown[0][:60]}'.", unknown[0][:60], code="unknown_parameter")
    for name, why in _STATEFUL.items():
        if data.get(name) is not None:
            raise bad_request(why, name, code="unsupported_parameter")
    if data.get("background"):
        raise bad_request(
            "'background' responses are not supported: they need responses stored by the gateway.",
            "background",
            code="unsupported_parameter",
        )
    if data.get("max_tool_calls") is not None:
        raise bad_request(
            "'max_tool_calls' is not supported: this gateway serves one model turn per request.",
            "max_tool_calls",
            code="unsupported_parameter",
        )
    if data.get("input") is None:
        raise bad_request("Missing required parameter: 'input'.", "input")
    messages = _input(data["input"])
    instructions = _get(data, "instructions", str)
    if instructions:
        messages.insert(0, {"role": "system", "content": instructions})
    if not any(m["role"] != "system" for m in messages):
        raise bad_request("'input' must contain at least one item.", "input")
    params: dict[str, Any] = {}
    if data.get("tools") is not None:
        tools = _tools(data["tools"])
        if tools:
            params["tools"] = tools
    if data.get("tool_choice") is not None:
        params["tool_choice"] = _tool_choice(data["tool_choice"])
    if _get(data, "parallel_tool_calls", bool) is False:
        params["parallel_tool_calls"] = False
    text = _get(data, "text", dict)
    if text is not None:
        _text_format(text, params)
    reasoning = _get(data, "reasoning", dict)
    if reasoning is not None:
        effort = _get(reasoning, "effort", str, "reasoning")
        if effort is not None:
            if effort not in _EFFORTS:
                raise _unsupported("reasoning.effort", effort, "Supported values are: " + ", ".join(sorted(_EFFORTS)))
            params["reasoning_effort"] = effort
        _get(reasoning, "summary", str, "reasoning")
    for name in ("temperature", "top_p"):
        value = _get(data, name, (int, float), "")
        if value is not None:
            params[name] = value
    top_logprobs = _get(data, "top_logprobs", int)
    if top_logprobs is not None:
        params["logprobs"] = True
        params["top_logprobs"] = top_logprobs
    for name in ("service_tier", "safety_identifier", "prompt_cache_key"):
        value = _get(data, name, str)
        if value is not None:
            params[name] = value
    max_tokens = _get(data, "max_output_tokens", int)
    if max_tokens is not None and not 1 <= max_tokens <= MAX_TOKENS:
        raise bad_request(
            f"Invalid 'max_output_tokens': integer below minimum value or too large (got {max_tokens}).",
            "max_output_tokens",
        )
    # Checked for their types only: the gateway keeps no responses, streams without obfuscation, and
    # never truncates a conversation for the client.
    _get(data, "store", bool)
    _get(data, "metadata", dict)
    _get(data, "stream_options", dict)
    _get(data, "include", list)
    truncation = _get(data, "truncation", str)
    if truncation not in (None, "disabled", "auto"):
        raise _unsupported("truncation", truncation, "Supported values are: 'auto', 'disabled'.")
    return ChatRequest(
        model=model,
        messages=messages,
        stream=_get(data, "stream", bool) is True,
        include_usage=True,  # the final event carries the whole response, usage included
        max_tokens=max_tokens,
        user=_get(data, "user", str),
        params=params,
    )
