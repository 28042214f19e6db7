"""The OpenAI client wire format: request bodies -> canonical types, canonical types -> response bodies."""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

import orjson
from pydantic import ConfigDict, Discriminator, Field, Tag, TypeAdapter, ValidationError, with_config
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
from sluicegate.wire.bounds import MAX_INTEGER, MAX_TOKENS, load_object

_ALLOW = ConfigDict(extra="allow", strict=True)  # fields the gateway does not know travel on, type-checked


def _tagged(name: str, key: str, known: frozenset[str], other: str | None) -> Discriminator:
    """A union chosen by `value[key]`: a known value picks its own shape, any other string `other` (if given);
    anything else is an error naming the key (see `_error`)."""

    def tag(value: Any) -> str | None:
        if not isinstance(value, dict):
            return None
        kind = value.get(key)
        if not isinstance(kind, str):  # (an unhashable value must not reach the set)
            return None
        if kind in known:
            return f"{key}={kind}"
        return f"{key}=*" if other is not None else None

    return Discriminator(tag, custom_error_type=name, custom_error_message=key)


Int64 = Annotated[int, Field(ge=-MAX_INTEGER - 1, le=MAX_INTEGER)]
TokenCount = Annotated[int, Field(ge=1, le=MAX_TOKENS)]
Number = Annotated[float, Field(allow_inf_nan=False)]


@with_config(_ALLOW)
class _TextPart(TypedDict):
    type: Literal["text"]
    text: str


@with_config(_ALLOW)
class _ImageURL(TypedDict):
    url: str
    detail: NotRequired[str]


@with_config(_ALLOW)
class _ImagePart(TypedDict):
    type: Literal["image_url"]
    image_url: _ImageURL


@with_config(_ALLOW)
class _InputAudio(TypedDict):
    data: str
    format: str


@with_config(_ALLOW)
class _AudioPart(TypedDict):
    type: Literal["input_audio"]
    input_audio: _InputAudio


@with_config(_ALLOW)
class _FilePart(TypedDict):
    type: Literal["file"]
    file: dict[str, Any]


@with_config(_ALLOW)
class _RefusalPart(TypedDict):
    type: Literal["refusal"]
    refusal: str


@with_config(_ALLOW)
class _OtherPart(TypedDict):  # a part type some provider knows and the gateway passes on
    type: str


_ContentPart = Annotated[
    Annotated[_TextPart, Tag("type=text")]
    | Annotated[_ImagePart, Tag("type=image_url")]
    | Annotated[_AudioPart, Tag("type=input_audio")]
    | Annotated[_FilePart, Tag("type=file")]
    | Annotated[_RefusalPart, Tag("type=refusal")]
    | Annotated[_OtherPart, Tag("type=*")],
    _tagged("part_type", "type", frozenset({"text", "image_url", "input_audio", "file", "refusal"}), "*"),
]
_Content = str | list[_ContentPart]


@with_config(_ALLOW)
class _FunctionCall(TypedDict):
    name: str
    arguments: str


@with_config(_ALLOW)
class _ToolCall(TypedDict):
    id: str
    type: Literal["function"]
    function: _FunctionCall


# Every role's shape types every field the canonical message has (tool_calls, tool_call_id, name, refusal),
# whatever the role: adapters read them wherever they appear.


@with_config(_ALLOW)
class _InstructionMessage(TypedDict):  # system and developer
    role: Literal["system", "developer"]
    content: _Content
    name: NotRequired[str]
    tool_calls: NotRequired[list[_ToolCall] | None]
    tool_call_id: NotRequired[str | None]
    refusal: NotRequired[str | None]


@with_config(_ALLOW)
class _UserMessage(TypedDict):
    role: Literal["user"]
    content: _Content
    name: NotRequired[str]
    tool_calls: NotRequired[list[_ToolCall] | None]
    tool_call_id: NotRequired[str | None]
    refusal: NotRequired[str | None]


@with_config(_ALLOW)
class _AssistantMessage(TypedDict):
    role: Literal["assistant"]
    content: NotRequired[_Content | None]
    name: NotRequired[str]
    tool_calls: NotRequired[list[_ToolCall] | None]
    tool_call_id: NotRequired[str | None]
    function_call: NotRequired[_FunctionCall | None]
    refusal: NotRequired[str | None]
    audio: NotRequired[dict[str, Any] | None]


@with_config(_ALLOW)
class _ToolMessage(TypedDict):
    role: Literal["tool"]
    content: _Content
    tool_call_id: str
    name: NotRequired[str]
    tool_calls: NotRequired[list[_ToolCall] | None]
    refusal: NotRequired[str | None]


@with_config(_ALLOW)
class _FunctionMessage(TypedDict):
    role: Literal["function"]
    content: str | None
    name: str
    tool_calls: NotRequired[list[_ToolCall] | None]
    tool_call_id: NotRequired[str | None]
    refusal: NotRequired[str | None]


_ROLES = ("system", "developer", "user", "assistant", "tool", "function")
_Message = Annotated[
    Annotated[_InstructionMessage, Tag("role=system")]
    | Annotated[_InstructionMessage, Tag("role=developer")]
    | Annotated[_UserMessage, Tag("role=user")]
    | Annotated[_AssistantMessage, Tag("role=assistant")]
    | Annotated[_ToolMessage, Tag("role=tool")]
    | Annotated[_FunctionMessage, Tag("role=function")],
    _tagged("message_role", "role", frozenset(_ROLES), None),
]


@with_config(_ALLOW)
class _FunctionDefinition(TypedDict):
    name: str
    description: NotRequired[str | None]
    parameters: NotRequired[dict[str, Any] | None]
    strict: NotRequired[bool | None]


@with_config(_ALLOW)
class _FunctionTool(TypedDict):
    type: Literal["function"]
    function: _FunctionDefinition


@with_config(_ALLOW)
class _OtherTool(TypedDict):  # custom tools and provider-specific ones, passed on
    type: str


_Tool = Annotated[
    Annotated[_FunctionTool, Tag("type=function")] | Annotated[_OtherTool, Tag("type=*")],
    _tagged("tool_type", "type", frozenset({"function"}), "*"),
]


@with_config(_ALLOW)
class _NamedFunction(TypedDict):
    name: str


@with_config(_ALLOW)
class _ToolChoice(TypedDict):
    type: str
    function: NotRequired[_NamedFunction]


@with_config(_ALLOW)
class _ResponseFormat(TypedDict):
    type: str
    json_schema: NotRequired[dict[str, Any]]


@with_config(_ALLOW)
class _StreamOptions(TypedDict):
    include_usage: NotRequired[bool | None]


@with_config(_ALLOW)
class _ChatBody(TypedDict):
    model: str
    messages: list[_Message]
    stream: NotRequired[bool | None]
    stream_options: NotRequired[_StreamOptions | None]
    max_tokens: NotRequired[TokenCount | None]
    max_completion_tokens: NotRequired[TokenCount | None]
    user: NotRequired[str | None]
    temperature: NotRequired[Number | None]
    top_p: NotRequired[Number | None]
    presence_penalty: NotRequired[Number | None]
    frequency_penalty: NotRequired[Number | None]
    n: NotRequired[Annotated[int, Field(ge=1, le=128)] | None]
    seed: NotRequired[Int64 | None]
    stop: NotRequired[str | list[str] | None]
    logit_bias: NotRequired[dict[str, Number] | None]
    logprobs: NotRequired[bool | None]
    top_logprobs: NotRequired[Annotated[int, Field(ge=0, le=100)] | None]
    tools: NotRequired[list[_Tool] | None]
    tool_choice: NotRequired[str | _ToolChoice | None]
    parallel_tool_calls: NotRequired[bool | None]
    functions: NotRequired[list[_FunctionDefinition] | None]
    function_call: NotRequired[str | _NamedFunction | None]
    response_format: NotRequired[_ResponseFormat | None]
    metadata: NotRequired[dict[str, Any] | None]
    store: NotRequired[bool | None]
    modalities: NotRequired[list[str] | None]
    audio: NotRequired[dict[str, Any] | None]
    prediction: NotRequired[dict[str, Any] | None]
    reasoning_effort: NotRequired[str | None]
    service_tier: NotRequired[str | None]
    verbosity: NotRequired[str | None]
    web_search_options: NotRequired[dict[str, Any] | None]
    prompt_cache_key: NotRequired[str | None]
    safety_identifier: NotRequired[str | None]


@with_config(_ALLOW)
class _EmbeddingBody(TypedDict):
    model: str
    input: str | list[str] | list[Int64] | list[list[Int64]]
    user: NotRequired[str | None]
    dimensions: NotRequired[Annotated[int, Field(ge=1, le=1_000_000)] | None]
    encoding_format: NotRequired[str | None]


_CHAT_BODY = TypeAdapter(_ChatBody)
_EMBEDDING_BODY = TypeAdapter(_EmbeddingBody)

# Fields the canonical request holds itself; everything else travels in `params`.
_CHAT_FIELDS = frozenset({"model", "messages", "stream", "stream_options", "user"})

_UNION_LABELS = frozenset({"str", "int", "float", "bool", "none", "dict"})
_EXPECTED = {
    "string_type": "a string",
    "list_type": "an array",
    "dict_type": "an object",
    "model_type": "an object",
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "a boolean",
}


def json_kind(value: Any) -> str:
    """How OpenAI's errors name a JSON value's type."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def _param_name(loc: tuple[Any, ...]) -> str:
    """`messages[0].content[1].text` from pydantic's location, without its union-branch labels."""
    name = ""
    for part in loc:
        if isinstance(part, int):
            name += f"[{part}]"
            continue
        text = str(part)
        if text in _UNION_LABELS or "[" in text or "=" in text or text.startswith("_") or "-" in text:
            continue  # pydantic's labels of union branches and constrained types mean nothing to a client
        name += f".{text}" if name else text
    return name


def _tag_error(param: str, key: str, value: Any, known: tuple[str, ...]) -> GatewayError:
    """A tagged union's tag (a message's role, a part's or tool's type) is missing or wrong."""
    if not isinstance(value, dict):
        got = json_kind(value)
        return bad_request(f"Invalid type for '{param}': expected an object, but got {got} instead.", param)
    where = f"{param}.{key}"
    if key not in value:
        return bad_request(f"Missing required parameter: '{where}'.", param=where)
    if not known:
        return bad_request(
            f"Invalid type for '{where}': expected a string, but got {json_kind(value[key])} instead.", where
        )
    supported = ", ".join(f"'{v}'" for v in known)
    shown = str(value[key])[:40]
    return bad_request(f"Invalid value for '{where}': '{shown}'. Supported values are: {supported}.", param=where)


def _validation_error(exc: ValidationError) -> GatewayError:
    errors = exc.errors()
    # The deepest location is the most specific complaint (union branches report shallow ones too).
    first = max(errors, key=lambda e: len(e["loc"]))
    param = _param_name(first["loc"])
    kind = first["type"]
    if kind == "missing":
        return bad_request(f"Missing required parameter: '{param}'.", param=param)
    if kind == "message_role":
        return _tag_error(param, "role", first["input"], _ROLES)
    if kind in ("part_type", "tool_type"):
        return _tag_error(param, "type", first["input"], ())
    if kind in _EXPECTED:  # every branch of a union that failed on this field's own type
        expected = []
        for error in errors:
            name = _EXPECTED.get(error["type"])
            if name and name not in expected and _param_name(error["loc"]) == param:
                expected.append(name)
        return bad_request(
            f"Invalid type for '{param}': expected {' or '.join(expected)}, "
            f"but got {json_kind(first['input'])} instead.",
            param=param,
        )
    return bad_request(f"Invalid value for '{param}': {first['msg']}.", param=param)


def _load_object(body: bytes) -> dict[str, Any]:
    return load_object(body, "We could not parse the JSON body of your request. The body must be a JSON object.")


def _check_messages(messages: list[dict[str, Any]]) -> None:
    """What the shapes cannot say: an assistant turn has content, tool calls or a function call."""
    if not messages:
        raise bad_request("'messages' must contain at least one message.", param="messages")
    for i, message in enumerate(messages):
        silent = message.get("content") is None and not message.get("tool_calls") and not message.get("function_call")
        if message["role"] == "assistant" and silent:
            param = f"messages[{i}].content"
            raise bad_request(
                f"Missing required parameter: '{param}' (an assistant message needs content or tool_calls).",
                param=param,
            )


def parse_chat_request(body: bytes) -> ChatRequest:
    data = _load_object(body)
    try:
        _CHAT_BODY.validate_python(data)
    except ValidationError as exc:
        raise _validation_error(exc) from None
    _check_messages(data["messages"])
    max_tokens = data.get("max_completion_tokens") or data.get("max_tokens")
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


def _model_object(name: str, owner: str) -> dict[str, str | int]:
    return {"id": name, "object": "model", "created": 0, "owned_by": owner}


def models_body(models: list[tuple[str, str]]) -> bytes:
    return orjson.dumps({"object": "list", "data": [_model_object(name, owner) for name, owner in models]})


def model_body(name: str, owner: str) -> bytes:
    """One model, as `GET /v1/models/{id}` answers it."""
    return orjson.dumps(_model_object(name, owner))


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
        if chunk.usage is None and chunk.raw is not None:  # the provider's own bytes (ChatChunk.raw)
            raw = chunk.raw if self._include_usage else chunk.raw.replace(b',"usage":null', b"")
            return b"data: " + raw + b"\n\n"
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
    def stream_encoder(request: ChatRequest, prompt_tokens: int | None = None) -> OpenAIStreamEncoder:
        return OpenAIStreamEncoder(request)
