"""The OpenAI client wire format: request bodies -> canonical types, canonical types -> response bodies."""

from __future__ import annotations

from typing import Any, Literal, NotRequired

import orjson
from pydantic import ConfigDict, TypeAdapter, ValidationError, with_config
from typing_extensions import TypedDict

from sluicegate.canonical import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    Usage,
)
from sluicegate.errors import GatewayError, bad_request

_ALLOW = ConfigDict(extra="allow", strict=True)


@with_config(_ALLOW)
class _ContentPart(TypedDict):
    type: str


@with_config(_ALLOW)
class _Message(TypedDict):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: NotRequired[str | list[_ContentPart] | None]
    name: NotRequired[str]


@with_config(_ALLOW)
class _StreamOptions(TypedDict):
    include_usage: NotRequired[bool]


@with_config(_ALLOW)
class _ChatBody(TypedDict):
    model: str
    messages: list[_Message]
    stream: NotRequired[bool | None]
    stream_options: NotRequired[_StreamOptions | None]
    max_tokens: NotRequired[int | None]
    max_completion_tokens: NotRequired[int | None]
    user: NotRequired[str]


@with_config(_ALLOW)
class _EmbeddingBody(TypedDict):
    model: str
    input: str | list[str] | list[int] | list[list[int]]
    user: NotRequired[str]


_CHAT_BODY = TypeAdapter(_ChatBody)
_EMBEDDING_BODY = TypeAdapter(_EmbeddingBody)

# Fields the canonical request holds itself; everything else travels in `params`.
_CHAT_FIELDS = frozenset({"model", "messages", "stream", "stream_options", "user"})


def _param_name(loc: tuple[Any, ...]) -> str:
    name = ""
    for part in loc:
        if isinstance(part, int):
            name += f"[{part}]"
        elif part in ("str", "list[_ContentPart]", "none", "list[str]", "list[int]", "list[list[int]]"):
            continue  # pydantic's union-branch labels mean nothing to a client
        elif "function-" in str(part) or "[" in str(part):
            continue
        else:
            name += f".{part}" if name else str(part)
    return name


def _validation_error(exc: ValidationError) -> GatewayError:
    # The deepest location is the most specific complaint (union branches report shallow ones too).
    first = max(exc.errors(), key=lambda e: len(e["loc"]))
    param = _param_name(first["loc"])
    if first["type"] == "missing":
        return bad_request(f"Missing required parameter: '{param}'.", param=param)
    return bad_request(f"Invalid value for '{param}': {first['msg']}.", param=param)


def _load_object(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise bad_request("We could not parse the JSON body of your request. The body must be a JSON object.") from None
    if not isinstance(data, dict):
        raise bad_request("The request body must be a JSON object.")
    return data


def parse_chat_request(body: bytes) -> ChatRequest:
    data = _load_object(body)
    try:
        _CHAT_BODY.validate_python(data)
    except ValidationError as exc:
        raise _validation_error(exc) from None
    if not data["messages"]:
        raise bad_request("'messages' must contain at least one message.", param="messages")
    max_tokens = data.get("max_completion_tokens") or data.get("max_tokens")
    if max_tokens is not None and max_tokens < 1:
        raise bad_request("'max_tokens' must be at least 1.", param="max_tokens")
    options = data.get("stream_options") or {}
    stream = bool(data.get("stream"))
    if options and not stream:
        raise bad_request(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options",
        )
    return ChatRequest(
        model=data["model"],
        messages=data["messages"],
        stream=stream,
        include_usage=bool(options.get("include_usage")),
        max_tokens=max_tokens,
        user=data.get("user"),
        params={k: v for k, v in data.items() if k not in _CHAT_FIELDS},
    )


def parse_embedding_request(body: bytes) -> EmbeddingRequest:
    data = _load_object(body)
    try:
        _EMBEDDING_BODY.validate_python(data)
    except ValidationError as exc:
        raise _validation_error(exc) from None
    return EmbeddingRequest(
        model=data["model"],
        input=data["input"],
        user=data.get("user"),
        params={k: v for k, v in data.items() if k not in ("model", "input", "user")},
    )


def usage_body(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_input_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def chat_response_body(response: ChatResponse, extension: dict[str, Any] | None = None) -> bytes:
    usage = usage_body(response.usage)
    if extension:
        usage["sluicegate"] = extension
    return orjson.dumps(
        {
            "id": response.id,
            "object": "chat.completion",
            "created": response.created,
            "model": response.model,
            "choices": response.choices,
            "usage": usage,
            **response.extra,
        }
    )


def chat_chunk_event(chunk: ChatChunk, include_usage: bool, extension: dict[str, Any] | None = None) -> bytes:
    """One SSE event. With `include_usage`, chunks carry `"usage": null` as OpenAI's do."""
    body: dict[str, Any] = {
        "id": chunk.id,
        "object": "chat.completion.chunk",
        "created": chunk.created,
        "model": chunk.model,
        "choices": chunk.choices,
        **chunk.extra,
    }
    if include_usage:
        if chunk.usage is None:
            body["usage"] = None
        else:
            usage = usage_body(chunk.usage)
            if extension:
                usage["sluicegate"] = extension
            body["usage"] = usage
    return b"data: " + orjson.dumps(body) + b"\n\n"


STREAM_DONE = b"data: [DONE]\n\n"


def embedding_response_body(response: EmbeddingResponse) -> bytes:
    return orjson.dumps(
        {
            "object": "list",
            "data": response.data,
            "model": response.model,
            "usage": {
                "prompt_tokens": response.usage.input_tokens,
                "total_tokens": response.usage.input_tokens,
            },
        }
    )


def models_body(models: list[tuple[str, str]]) -> bytes:
    return orjson.dumps(
        {
            "object": "list",
            "data": [{"id": name, "object": "model", "created": 0, "owned_by": owner} for name, owner in models],
        }
    )


def error_body(error: GatewayError) -> bytes:
    return orjson.dumps(
        {
            "error": {
                "message": error.message,
                "type": error.type,
                "param": error.param,
                "code": error.code,
            }
        }
    )


def stream_error_event(error: GatewayError) -> bytes:
    """An error that happens after a stream started, as OpenAI sends it inside the stream."""
    return b"data: " + error_body(error) + b"\n\n"


class OpenAIStreamEncoder:
    """Renders canonical chunks as OpenAI SSE; drops the usage chunk unless the client asked for it."""

    __slots__ = ("_include_usage",)

    def __init__(self, request: ChatRequest) -> None:
        self._include_usage = request.include_usage

    def encode(self, chunk: ChatChunk, extension: dict[str, Any] | None = None) -> bytes:
        if not chunk.choices and chunk.usage is not None and not self._include_usage:
            return b""
        return chat_chunk_event(chunk, self._include_usage, extension)

    def finish(self) -> bytes:
        return STREAM_DONE

    def error(self, error: GatewayError) -> bytes:
        return stream_error_event(error)


class OpenAIWire:
    """The OpenAI client format as one object, so the server can serve any format the same way."""

    name = "openai"
    parse_chat_request = staticmethod(parse_chat_request)
    chat_response_body = staticmethod(chat_response_body)
    error_body = staticmethod(error_body)

    @staticmethod
    def stream_encoder(request: ChatRequest) -> OpenAIStreamEncoder:
        return OpenAIStreamEncoder(request)
