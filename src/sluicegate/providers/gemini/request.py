"""Canonical chat request -> Gemini generateContent body (systemInstruction, contents, tools, config)."""

from __future__ import annotations

from typing import Any

import orjson

from sluicegate.canonical import ChatRequest, Message
from sluicegate.errors import bad_request
from sluicegate.providers.content import (
    forced_function,
    function_tools,
    image_url_of,
    parse_data_url,
    text_of,
    tool_arguments,
    tool_names_by_id,
)
from sluicegate.providers.mapping import OPENAI_ONLY, Param, ParamMap, Policy, stop_list


def _response_format(value: Any) -> dict[str, Any]:
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "text":
        return {"responseMimeType": "text/plain"}
    if kind == "json_object":
        return {"responseMimeType": "application/json"}
    if kind == "json_schema":
        schema = (value.get("json_schema") or {}).get("schema") or {}
        return {"responseMimeType": "application/json", "responseJsonSchema": schema}
    raise bad_request("Invalid value for 'response_format'.", param="response_format")


# reasoning_effort -> a thinking budget in tokens (the budgets Google's own OpenAI-compatible endpoint uses).
_THINKING_BUDGETS = {"none": 0, "minimal": 0, "low": 1024, "medium": 8192, "high": 24576, "xhigh": 32768}


def _thinking_budget(value: Any) -> int:
    if value not in _THINKING_BUDGETS:
        raise bad_request("Invalid value for 'reasoning_effort'.", param="reasoning_effort")
    return _THINKING_BUDGETS[value]


def _thinking_config(params: dict[str, Any], body: dict[str, Any]) -> None:
    """An Anthropic client's `thinking` as Gemini's budget (`adaptive`: Gemini's dynamic -1); with thinking
    asked for either way, the thoughts come back (`includeThoughts`) to be relayed."""
    thinking = params.get("thinking")
    config = body.get("generationConfig", {}).get("thinkingConfig")
    if isinstance(thinking, dict) and config is None:
        kind = thinking.get("type")
        budget = thinking.get("budget_tokens") if kind == "enabled" else 0 if kind == "disabled" else -1
        config = body.setdefault("generationConfig", {})["thinkingConfig"] = {"thinkingBudget": budget}
    if config is not None and config.get("thinkingBudget") != 0:
        config["includeThoughts"] = True


PARAMS = ParamMap(
    family="gemini",
    params={
        "temperature": Param("generationConfig.temperature", low=0, high=2),
        "top_p": Param("generationConfig.topP", low=0, high=1),
        "top_k": Param("generationConfig.topK", low=1),
        "stop": Param("generationConfig.stopSequences", stop_list),
        "n": Param("generationConfig.candidateCount", low=1, high=8),
        "seed": Param("generationConfig.seed"),
        "presence_penalty": Param("generationConfig.presencePenalty", low=-2, high=2),
        "frequency_penalty": Param("generationConfig.frequencyPenalty", low=-2, high=2),
        "logprobs": Param("generationConfig.responseLogprobs"),
        "top_logprobs": Param("generationConfig.logprobs", low=0, high=20),
        "reasoning_effort": Param("generationConfig.thinkingConfig.thinkingBudget", _thinking_budget),
    },
    handled=frozenset(
        {"tools", "tool_choice", "parallel_tool_calls", "max_tokens", "max_completion_tokens", "response_format"}
        | {"thinking"}
    ),
    ignored=OPENAI_ONLY,
)

_TOOL_MODES = {"auto": "AUTO", "required": "ANY", "none": "NONE"}


def request_body(request: ChatRequest, policy: Policy) -> dict[str, Any]:
    system, contents = split_messages(request.messages)
    body: dict[str, Any] = {}
    if system:
        body["systemInstruction"] = {"parts": [{"text": t} for t in system]}
    body["contents"] = contents
    params = request.params
    PARAMS.apply(params, body, policy)
    if request.max_tokens is not None:
        body.setdefault("generationConfig", {})["maxOutputTokens"] = request.max_tokens
    if params.get("response_format") is not None:
        body.setdefault("generationConfig", {}).update(_response_format(params["response_format"]))
    _thinking_config(params, body)
    tools = function_tools(params)
    if tools:
        body["tools"] = [
            {
                "functionDeclarations": [
                    {
                        "name": f["name"],
                        **({"description": f["description"]} if f.get("description") else {}),
                        # Full JSON Schema (anyOf, $ref, ...), not the OpenAPI subset `parameters` takes.
                        **({"parametersJsonSchema": f["parameters"]} if f.get("parameters") else {}),
                    }
                    for f in tools
                ]
            }
        ]
        choice = params.get("tool_choice")
        if choice is not None:
            config: dict[str, Any]
            if isinstance(choice, str) and choice in _TOOL_MODES:
                config = {"mode": _TOOL_MODES[choice]}
            else:
                config = {"mode": "ANY", "allowedFunctionNames": [forced_function(choice)]}
            body["toolConfig"] = {"functionCallingConfig": config}
    return body


def split_messages(messages: list[Message]) -> tuple[list[str], list[dict[str, Any]]]:
    """(system texts, contents): roles become user/model, tool results become functionResponse parts."""
    names = tool_names_by_id(messages)
    system: list[str] = []
    contents: list[dict[str, Any]] = []
    for message in messages:
        role = message["role"]
        if role in ("system", "developer"):
            content = message.get("content")
            if isinstance(content, list):
                system.extend(part.get("text", "") for part in content if part.get("type") == "text")
            else:
                system.append(text_of(content))
        elif role == "tool":
            call_id = message.get("tool_call_id", "")
            name = names.get(call_id)
            if name is None:
                raise bad_request(
                    f"The tool result for '{call_id}' answers no tool call in the conversation.", param="messages"
                )
            response = {"id": call_id, "name": name, "response": _tool_response(message.get("content"))}
            _append(contents, "user", [{"functionResponse": response}])
        elif role == "assistant":
            _append(contents, "model", _model_parts(message))
        else:
            _append(contents, "user", _user_parts(message.get("content")))
    return system, contents


def _append(contents: list[dict[str, Any]], role: str, parts: list[dict[str, Any]]) -> None:
    if contents and contents[-1]["role"] == role:
        contents[-1]["parts"].extend(parts)
    else:
        contents.append({"role": role, "parts": parts})


def _tool_response(content: Any) -> dict[str, Any]:
    """Gemini wants an object: a JSON-object result as it is, anything else under `result`."""
    text = text_of(content)
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        value = None
    return value if isinstance(value, dict) else {"result": text}


def _user_parts(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}]
    parts: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type")
        if kind == "text":
            parts.append({"text": part.get("text", "")})
        elif kind == "image_url":
            url = image_url_of(part)
            parsed = parse_data_url(url)
            if parsed is None:
                raise bad_request("Gemini takes images as base64 data URLs, not remote URLs.", param="messages")
            parts.append({"inlineData": {"mimeType": parsed[0], "data": parsed[1]}})
        else:
            raise bad_request(f"Content parts of type '{kind}' cannot be sent to Gemini.", param="messages")
    return parts


def _model_parts(message: Message) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    text = text_of(message.get("content"))
    if text:
        parts.append({"text": text})
    for call in message.get("tool_calls") or ():
        function = call["function"]
        parts.append(
            {
                "functionCall": {
                    "id": call["id"],
                    "name": function["name"],
                    "args": tool_arguments(function["arguments"]),
                }
            }
        )
    return parts
