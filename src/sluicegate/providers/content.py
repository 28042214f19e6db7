"""Content helpers every non-OpenAI family needs: text of a message, data-URL images, tool arguments."""

from __future__ import annotations

from typing import Any

import orjson

from sluicegate.canonical import Message
from sluicegate.errors import bad_request

# Set in `ChatRequest.params` when a message part or tool carries `cache_control`; never sent upstream.
CACHE_HINTS = "sluicegate_cache_hints"
# A request param set when an assistant turn carries thinking blocks: formats without them strip them.
REASONING_HISTORY = "sluicegate_reasoning_history"


def strip_cache_hints(messages: list[Any], tools: Any) -> tuple[list[Any], Any]:
    """Copies of messages and tools without `cache_control` keys, for providers that refuse unknown fields."""
    clean: list[Any] = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list) and any("cache_control" in part for part in content):
            parts = [{k: v for k, v in part.items() if k != "cache_control"} for part in content]
            message = {**message, "content": parts}
        clean.append(message)
    if isinstance(tools, list):
        tools = [{k: v for k, v in tool.items() if k != "cache_control"} for tool in tools]
    return clean, tools


def strip_reasoning(messages: list[Any]) -> list[Any]:
    """Copies of assistant messages without their reasoning, for upstreams that refuse it coming back."""
    return [
        {k: v for k, v in m.items() if k not in ("thinking_blocks", "reasoning_content")}
        if "thinking_blocks" in m or "reasoning_content" in m
        else m
        for m in messages
    ]


def text_of(content: Any) -> str:
    """The text of an OpenAI message content (a string, or the text parts of a list)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text")


def parse_data_url(url: str) -> tuple[str, str] | None:
    """(media type, base64 data) of a `data:<type>;base64,<data>` URL; None for any other URL."""
    if not url.startswith("data:"):
        return None
    head, sep, data = url[5:].partition(",")
    if not sep or not head.endswith(";base64"):
        raise bad_request("Image data URLs must be base64-encoded ('data:<type>;base64,...').", param="messages")
    return head[: -len(";base64")] or "application/octet-stream", data


def data_url(media_type: str, data: str) -> str:
    return f"data:{media_type};base64,{data}"


def image_url_of(part: dict[str, Any]) -> str:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str):
        raise bad_request("An image_url part needs an 'image_url.url'.", param="messages")
    return url


def tool_arguments(arguments: Any) -> Any:
    """A tool call's `arguments` JSON text as an object (providers other than OpenAI want the object)."""
    if isinstance(arguments, dict):
        return arguments
    if not arguments:
        return {}
    try:
        return orjson.loads(arguments)
    except orjson.JSONDecodeError:
        raise bad_request("A tool call's 'arguments' is not valid JSON.", param="messages") from None


def dumps_arguments(value: Any) -> str:
    return orjson.dumps(value if value is not None else {}).decode()


def tool_names_by_id(messages: list[Message]) -> dict[str, str]:
    """Tool-call id -> function name, from the assistant turns (Gemini answers tools by name)."""
    names: dict[str, str] = {}
    for message in messages:
        for call in message.get("tool_calls") or ():
            names[call["id"]] = call["function"]["name"]
    return names


def function_tools(params: dict[str, Any]) -> list[dict[str, Any]]:
    """The `function` objects of OpenAI `tools`; any other tool type is refused."""
    tools = params.get("tools") or []
    if not isinstance(tools, list):
        raise bad_request("Invalid value for 'tools': expected an array.", param="tools")
    functions = []
    for tool in tools:
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(tool.get("function"), dict):
            raise bad_request("Only tools of type 'function' can be translated for this provider.", param="tools")
        functions.append(tool["function"])
    return functions


def forced_function(tool_choice: Any) -> str | None:
    """The function name a `tool_choice` object forces, if any."""
    if isinstance(tool_choice, dict):
        function = tool_choice.get("function")
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            return str(function["name"])
        raise bad_request("Invalid value for 'tool_choice'.", param="tool_choice")
    return None
