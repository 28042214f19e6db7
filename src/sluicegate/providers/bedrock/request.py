"""Canonical chat request -> Bedrock Converse body (system, content blocks, inferenceConfig, toolConfig)."""

from __future__ import annotations

from typing import Any

from sluicegate.canonical import ChatRequest, Message
from sluicegate.errors import bad_request
from sluicegate.providers.anthropic.request import thinking_param
from sluicegate.providers.content import (
    forced_function,
    function_tools,
    image_url_of,
    parse_data_url,
    text_of,
    tool_arguments,
)
from sluicegate.providers.mapping import OPENAI_ONLY, Param, ParamMap, Policy, is_false, is_one, stop_list

DEFAULT_MAX_TOKENS = 4096  # what thinking needs room above, when the client sets no limit

PARAMS = ParamMap(
    family="bedrock",
    params={
        "temperature": Param("inferenceConfig.temperature", low=0, high=1),
        "top_p": Param("inferenceConfig.topP", low=0, high=1),
        "stop": Param("inferenceConfig.stopSequences", stop_list),
    },
    handled=frozenset(
        {"tools", "tool_choice", "parallel_tool_calls", "max_tokens", "max_completion_tokens"}
        | {"thinking", "reasoning_effort"}
    ),
    ignored=OPENAI_ONLY,
    noop={"n": is_one, "logprobs": is_false},
)

_IMAGE_FORMATS = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}


def _is_claude(model: str) -> bool:
    return "anthropic." in model or "claude" in model


def request_body(request: ChatRequest, policy: Policy, model: str = "") -> dict[str, Any]:
    system, messages = split_messages(request.messages)
    body: dict[str, Any] = {"messages": messages}
    if system:
        body["system"] = system
    params = request.params
    PARAMS.apply(params, body, policy)
    if request.max_tokens is not None:
        body.setdefault("inferenceConfig", {})["maxTokens"] = request.max_tokens
    if _is_claude(model):  # Claude on Bedrock thinks as on Anthropic's API, asked through the model's own fields
        max_tokens = request.max_tokens or DEFAULT_MAX_TOKENS
        thinking = thinking_param(params, max_tokens)
        if thinking is not None:
            body.setdefault("additionalModelRequestFields", {})["thinking"] = thinking
            body.setdefault("inferenceConfig", {}).setdefault("maxTokens", max_tokens)
    tools = function_tools(params)
    choice = params.get("tool_choice")
    history_has_tools = any(m.get("tool_calls") or m["role"] == "tool" for m in request.messages)
    if tools and (choice != "none" or history_has_tools):
        # Bedrock has no "none" choice, and needs toolConfig while the history holds tool blocks: then
        # the tools stay declared and the model may call one (docs/providers.md).
        config: dict[str, Any] = {
            "tools": [
                {
                    "toolSpec": {
                        "name": f["name"],
                        **({"description": f["description"]} if f.get("description") else {}),
                        "inputSchema": {"json": f.get("parameters") or {"type": "object", "properties": {}}},
                    }
                }
                for f in tools
            ]
        }
        if choice == "required":
            config["toolChoice"] = {"any": {}}
        elif choice in (None, "auto", "none"):
            if choice == "auto":
                config["toolChoice"] = {"auto": {}}
        else:
            config["toolChoice"] = {"tool": {"name": forced_function(choice)}}
        body["toolConfig"] = config
    return body


def _cache_point(part: Any) -> list[dict[str, Any]]:
    """Bedrock marks a prompt-cache breakpoint with a cachePoint block after the cached content."""
    return [{"cachePoint": {"type": "default"}}] if "cache_control" in part else []


def split_messages(messages: list[Message]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for message in messages:
        role = message["role"]
        if role in ("system", "developer"):
            content = message.get("content")
            parts = content if isinstance(content, list) else [{"type": "text", "text": text_of(content)}]
            for part in parts:
                system.append({"text": part.get("text", "")})
                system.extend(_cache_point(part))
        elif role == "tool":
            result = {
                "toolUseId": message.get("tool_call_id", ""),
                "content": [{"text": text_of(message.get("content"))}],
            }
            _append(turns, "user", [{"toolResult": result}])
        elif role == "assistant":
            _append(turns, "assistant", _assistant_blocks(message))
        else:
            _append(turns, "user", _user_blocks(message.get("content")))
    return system, turns


def _append(turns: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    if turns and turns[-1]["role"] == role:
        turns[-1]["content"].extend(blocks)
    else:
        turns.append({"role": role, "content": blocks})


def _user_blocks(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}]
    blocks: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type")
        if kind == "text":
            blocks.append({"text": part.get("text", "")})
            blocks.extend(_cache_point(part))
        elif kind == "image_url":
            parsed = parse_data_url(image_url_of(part))
            if parsed is None or parsed[0] not in _IMAGE_FORMATS:
                raise bad_request("Bedrock takes images as base64 data URLs of PNG, JPEG, GIF or WebP.", "messages")
            blocks.append({"image": {"format": _IMAGE_FORMATS[parsed[0]], "source": {"bytes": parsed[1]}}})
            blocks.extend(_cache_point(part))
        else:
            raise bad_request(f"Content parts of type '{kind}' cannot be sent to Bedrock.", param="messages")
    return blocks


def _reasoning_blocks(message: Message) -> list[dict[str, Any]]:
    """Signed thoughts of an earlier turn, first in the turn and unchanged (Claude checks them)."""
    blocks: list[dict[str, Any]] = []
    for block in message.get("thinking_blocks") or ():
        if block.get("type") == "redacted_thinking":
            blocks.append({"reasoningContent": {"redactedContent": block.get("data", "")}})
        elif block.get("signature"):
            text = {"text": block.get("thinking", ""), "signature": block["signature"]}
            blocks.append({"reasoningContent": {"reasoningText": text}})
    return blocks


def _assistant_blocks(message: Message) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = _reasoning_blocks(message)
    text = text_of(message.get("content"))
    if text:
        blocks.append({"text": text})
    for call in message.get("tool_calls") or ():
        function = call["function"]
        blocks.append(
            {
                "toolUse": {
                    "toolUseId": call["id"],
                    "name": function["name"],
                    "input": tool_arguments(function.get("arguments")),
                }
            }
        )
    return blocks
