"""Canonical chat request -> Anthropic Messages request body (system, content blocks, tools, parameters)."""

from __future__ import annotations

from typing import Any

from sluicegate.canonical import ChatRequest, Message
from sluicegate.errors import bad_request
from sluicegate.providers.content import (
    forced_function,
    function_tools,
    image_url_of,
    parse_data_url,
    text_of,
    tool_arguments,
)
from sluicegate.providers.mapping import OPENAI_ONLY, Param, ParamMap, Policy, is_false, is_one, stop_list

# Anthropic requires max_tokens; when the client sets none, this is what the gateway asks for.
DEFAULT_MAX_TOKENS = 4096

PARAMS = ParamMap(
    family="anthropic",
    params={
        "temperature": Param("temperature", low=0, high=1),
        "top_p": Param("top_p", low=0, high=1),
        "top_k": Param("top_k", low=0),
        "stop": Param("stop_sequences", stop_list),
    },
    handled=frozenset(
        {"tools", "tool_choice", "parallel_tool_calls", "max_tokens", "max_completion_tokens"}
        | {"thinking", "reasoning_effort"}
    ),
    ignored=OPENAI_ONLY,
    noop={"n": is_one, "logprobs": is_false},
)


# OpenAI's reasoning_effort as an extended-thinking budget (tokens). "none"/"minimal": no thinking.
EFFORT_BUDGETS = {"low": 1024, "medium": 4096, "high": 16384, "xhigh": 32768}
MIN_THINKING_BUDGET = 1024  # Anthropic refuses less


def thinking_param(params: dict[str, Any], max_tokens: int) -> dict[str, Any] | None:
    """Anthropic's `thinking` from the client's own (an Anthropic client) or its `reasoning_effort`; the
    budget kept below `max_tokens` (which the gateway may have lowered to fit a budget), as Anthropic requires."""
    thinking = params.get("thinking")
    if thinking is None:
        budget = EFFORT_BUDGETS.get(params.get("reasoning_effort") or "")
        if budget is None:
            return None
        thinking = {"type": "enabled", "budget_tokens": budget}
    budget = thinking.get("budget_tokens") if thinking.get("type") == "enabled" else None
    if isinstance(budget, int) and budget >= max_tokens:
        if max_tokens - 1 < MIN_THINKING_BUDGET:
            return None  # no room left to think: answer without
        thinking = {**thinking, "budget_tokens": max_tokens - 1}
    return thinking


def request_body(model: str, request: ChatRequest, policy: Policy) -> dict[str, Any]:
    system, messages = split_messages(request.messages)
    body: dict[str, Any] = {"model": model, "max_tokens": request.max_tokens or DEFAULT_MAX_TOKENS}
    if system:
        body["system"] = system
    body["messages"] = messages
    params = request.params
    PARAMS.apply(params, body, policy)
    thinking = thinking_param(params, body["max_tokens"])
    if thinking is not None:
        body["thinking"] = thinking
    tools = function_tools(params)
    if tools:
        body["tools"] = [
            {
                "name": f["name"],
                **({"description": f["description"]} if f.get("description") else {}),
                "input_schema": f.get("parameters") or {"type": "object", "properties": {}},
                **({"cache_control": t["cache_control"]} if "cache_control" in t else {}),
            }
            for f, t in zip(tools, params["tools"], strict=True)
        ]
        choice = _tool_choice(params.get("tool_choice"), params.get("parallel_tool_calls"))
        if choice is not None:
            body["tool_choice"] = choice
    if request.user:
        body["metadata"] = {"user_id": request.user}
    if request.stream:
        body["stream"] = True
    return body


def _tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    if choice is None and parallel is not False:
        return None
    mapped: dict[str, Any]
    if choice in (None, "auto"):
        mapped = {"type": "auto"}
    elif choice == "required":
        mapped = {"type": "any"}
    elif choice == "none":
        return {"type": "none"}
    else:
        name = forced_function(choice)
        if name is None:
            raise bad_request("Invalid value for 'tool_choice'.", param="tool_choice")
        mapped = {"type": "tool", "name": name}
    if parallel is False:
        mapped["disable_parallel_tool_use"] = True
    return mapped


def split_messages(messages: list[Message]) -> tuple[str | list[dict[str, Any]], list[dict[str, Any]]]:
    """(system prompt, conversation) with consecutive same-role turns merged, as Anthropic requires."""
    system_blocks: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for message in messages:
        role = message["role"]
        if role in ("system", "developer"):
            system_blocks.extend(_system_blocks(message.get("content")))
            continue
        if role == "tool":
            block: dict[str, Any] = {
                "type": "tool_result",
                "tool_use_id": message.get("tool_call_id", ""),
                "content": _tool_result_content(message.get("content")),
            }
            _append(turns, "user", [block])
        elif role == "assistant":
            _append(turns, "assistant", _assistant_blocks(message))
        else:
            _append(turns, "user", _user_blocks(message.get("content")))
    system: str | list[dict[str, Any]] = system_blocks
    if len(system_blocks) == 1 and "cache_control" not in system_blocks[0]:
        system = system_blocks[0]["text"]
    return system, [_collapse(turn) for turn in turns]


def _system_blocks(content: Any) -> list[dict[str, Any]]:
    if not isinstance(content, list):
        return [{"type": "text", "text": text_of(content)}]
    return [_with_cache({"type": "text", "text": p.get("text", "")}, p) for p in content if p.get("type") == "text"]


def _with_cache(block: dict[str, Any], part: Any) -> dict[str, Any]:
    """Keeps a prompt-cache breakpoint the client set on this part."""
    if "cache_control" in part:
        block["cache_control"] = part["cache_control"]
    return block


def _append(turns: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    if turns and turns[-1]["role"] == role:
        turns[-1]["content"].extend(blocks)
    else:
        turns.append({"role": role, "content": blocks})


def _collapse(turn: dict[str, Any]) -> dict[str, Any]:
    """A turn that is one text block is sent as a plain string, as most clients write it."""
    blocks = turn["content"]
    if len(blocks) == 1 and blocks[0]["type"] == "text" and "cache_control" not in blocks[0]:
        return {"role": turn["role"], "content": blocks[0]["text"]}
    return turn


def _tool_result_content(content: Any) -> str | list[dict[str, Any]]:
    if isinstance(content, str) or content is None:
        return content or ""
    return _user_blocks(content)


def _user_blocks(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    blocks: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type")
        if kind == "text":
            blocks.append(_with_cache({"type": "text", "text": part.get("text", "")}, part))
        elif kind == "image_url":
            blocks.append(_with_cache(_image_block(image_url_of(part)), part))
        else:
            raise bad_request(f"Content parts of type '{kind}' cannot be sent to Anthropic.", param="messages")
    return blocks


def _image_block(url: str) -> dict[str, Any]:
    parsed = parse_data_url(url)
    if parsed is None:
        return {"type": "image", "source": {"type": "url", "url": url}}
    media_type, data = parsed
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}


def _assistant_blocks(message: Message) -> list[dict[str, Any]]:
    # Earlier thoughts go back first and whole; unsigned ones (another provider's) cannot be verified.
    blocks: list[dict[str, Any]] = [
        dict(b)
        for b in message.get("thinking_blocks") or ()
        if b.get("signature") or b.get("type") == "redacted_thinking"
    ]
    text = text_of(message.get("content"))
    if text:
        blocks.append({"type": "text", "text": text})
    for call in message.get("tool_calls") or ():
        function = call["function"]
        blocks.append(
            {
                "type": "tool_use",
                "id": call["id"],
                "name": function["name"],
                "input": tool_arguments(function.get("arguments")),
            }
        )
    return blocks
