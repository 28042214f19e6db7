"""OpenAI Chat Completions and Embeddings, and the OpenAI-compatible family (vLLM, Groq, Ollama, ...)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from sluicegate.canonical import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    Usage,
)
from sluicegate.errors import ErrorClass, UpstreamError, bad_request, scrub
from sluicegate.providers.base import Endpoint, UpstreamRequest
from sluicegate.providers.classify import classify_status, retry_after_seconds
from sluicegate.providers.content import CACHE_HINTS, REASONING_HISTORY, strip_cache_hints, strip_reasoning
from sluicegate.providers.openai.quirks import OPENAI as OPENAI_QUIRKS
from sluicegate.providers.openai.quirks import Quirks, quirks_for
from sluicegate.providers.shape import load_object
from sluicegate.providers.sse import SSEParser

_RESPONSE_FIELDS = frozenset({"id", "object", "created", "model", "choices", "usage"})


def parse_usage(raw: Mapping[str, Any] | None) -> Usage:
    if not raw:
        return Usage()
    prompt_details = raw.get("prompt_tokens_details") or {}
    completion_details = raw.get("completion_tokens_details") or {}
    return Usage(
        input_tokens=raw.get("prompt_tokens") or 0,
        output_tokens=raw.get("completion_tokens") or 0,
        cached_input_tokens=prompt_details.get("cached_tokens") or 0,
        reasoning_tokens=completion_details.get("reasoning_tokens") or 0,
    )


def _extra(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in _RESPONSE_FIELDS}


def _load(body: bytes, what: str) -> dict[str, Any]:
    return load_object(body, "the provider", what)


def _error_from_payload(status: int, data: Mapping[str, Any], headers: Mapping[str, str]) -> UpstreamError:
    error = data.get("error")
    if isinstance(error, dict):
        message = str(error.get("message") or "")
        code = error.get("code") or error.get("type")
    else:
        message, code = str(error or data.get("message") or ""), None
    code = str(code) if code is not None else None
    error_class = classify_status(status, message, code)
    if code == "insufficient_quota":
        error_class = ErrorClass.AUTH  # a billing problem: retrying the same account cannot help
    return UpstreamError(
        error_class,
        scrub(message) or f"HTTP {status}",
        status=status,
        retry_after=retry_after_seconds(headers),
    )


def _apply_quirks(body: dict[str, Any], quirks: Quirks, policy: str) -> None:
    for name in quirks.unsupported & body.keys():
        if body[name] is None or (name == "n" and body[name] == 1):
            continue
        if policy == "refuse":
            raise bad_request(
                f"The parameter '{name}' is not supported by the provider serving this model.",
                param=name,
                code="unsupported_parameter",
            )
        del body[name]
    for name, renamed in quirks.renames.items():
        if name in body:
            body[renamed] = body.pop(name)


class OpenAIStreamDecoder:
    __slots__ = ("done",)
    openai_wire = True  # each event is an OpenAI chat chunk: an OpenAI client may be sent its bytes as they are

    def __init__(self) -> None:
        self.done = False

    def decode(self, event: str | None, data: bytes) -> list[ChatChunk]:
        if data == b"[DONE]":
            self.done = True
            return []
        chunk = _load(data, "stream event")
        if "error" in chunk:
            raise _error_from_payload(500, chunk, {})
        usage = chunk.get("usage")
        return [
            ChatChunk(
                id=chunk.get("id", ""),
                model=chunk.get("model", ""),
                created=chunk.get("created", 0),
                choices=chunk.get("choices") or [],
                usage=parse_usage(usage) if usage else None,
                extra=_extra(chunk),
            )
        ]


# OpenAI's reasoning models refuse `max_tokens`; the gateway may set a limit the client never sent.
_COMPLETION_FIELD_MODELS = ("o1", "o3", "o4", "gpt-5")


def _needs_completion_field(model: str) -> bool:
    return model.startswith(_COMPLETION_FIELD_MODELS)


def thinking_effort(thinking: Any) -> str | None:
    """Anthropic's `thinking` as OpenAI's `reasoning_effort` (reasoning models only): the budget's size."""
    if not isinstance(thinking, dict) or thinking.get("type") == "disabled":
        return None
    budget = thinking.get("budget_tokens")
    if not isinstance(budget, int):
        return "medium"  # adaptive
    return "low" if budget <= 2048 else "medium" if budget <= 8192 else "high"


class OpenAIAdapter:
    """Chat and embeddings over the OpenAI wire format. `family` names it in /v1/models."""

    def __init__(self, family: str = "openai", quirks: Quirks | None = None) -> None:
        self.family = family
        self.quirks = quirks  # None: the endpoint's configured `quirks` name decides

    def _headers(self, endpoint: Endpoint) -> dict[str, str]:
        headers = {"content-type": "application/json", **endpoint.config.headers}
        if endpoint.api_key:
            headers["authorization"] = f"Bearer {endpoint.api_key}"
        return headers

    def _url(self, endpoint: Endpoint, path: str) -> str:
        return endpoint.config.base_url.rstrip("/") + path

    def chat_body(self, endpoint: Endpoint, model: str, request: ChatRequest) -> dict[str, Any]:
        quirks = self.quirks or quirks_for(endpoint.config.quirks)
        body: dict[str, Any] = {"model": model, "messages": request.messages, **request.params}
        if body.pop(CACHE_HINTS, None):  # Anthropic cache breakpoints: OpenAI's API refuses the field
            body["messages"], tools = strip_cache_hints(request.messages, body.get("tools"))
            if tools is not None:
                body["tools"] = tools
        if body.pop(REASONING_HISTORY, None):  # thinking blocks of an Anthropic client's earlier turns
            body["messages"] = strip_reasoning(body["messages"])
        thinking = body.pop("thinking", None)  # an Anthropic client's extended thinking
        if thinking is not None and "reasoning_effort" not in body and _needs_completion_field(model):
            effort = thinking_effort(thinking)
            if effort is not None:
                body["reasoning_effort"] = effort
        if request.max_tokens is not None:
            field = quirks.max_tokens_field
            if field == "as_sent":
                asked_new = "max_completion_tokens" in request.params
                field = "max_completion_tokens" if asked_new or _needs_completion_field(model) else "max_tokens"
            body.pop("max_tokens", None)
            body.pop("max_completion_tokens", None)
            body[field] = request.max_tokens
        if request.user is not None:
            body["user"] = request.user
        if quirks is not OPENAI_QUIRKS:
            _apply_quirks(body, quirks, endpoint.config.unsupported_params)
        if request.stream:
            body["stream"] = True
            if quirks.stream_usage:
                # Always ask for usage, so every stream is accounted for; egress strips it if unwanted.
                body["stream_options"] = {"include_usage": True}
        return body

    def chat_request(self, endpoint: Endpoint, model: str, request: ChatRequest) -> UpstreamRequest:
        body = self.chat_body(endpoint, model, request)
        return UpstreamRequest(self._url(endpoint, "/chat/completions"), self._headers(endpoint), orjson.dumps(body))

    def chat_response(self, body: bytes) -> ChatResponse:
        data = _load(body, "response")
        return ChatResponse(
            id=data.get("id", ""),
            model=data.get("model", ""),
            created=data.get("created", 0),
            choices=data.get("choices") or [],
            usage=parse_usage(data.get("usage")),
            extra=_extra(data),
        )

    def stream_decoder(self) -> OpenAIStreamDecoder:
        return OpenAIStreamDecoder()

    def stream_framer(self) -> SSEParser:
        return SSEParser()

    def embedding_request(self, endpoint: Endpoint, model: str, request: EmbeddingRequest) -> UpstreamRequest:
        body: dict[str, Any] = {"model": model, "input": request.input, **request.params}
        if request.user is not None:
            body["user"] = request.user
        return UpstreamRequest(self._url(endpoint, "/embeddings"), self._headers(endpoint), orjson.dumps(body))

    def embedding_response(self, body: bytes) -> EmbeddingResponse:
        data = _load(body, "response")
        usage = data.get("usage") or {}
        return EmbeddingResponse(
            model=data.get("model", ""),
            data=data.get("data") or [],
            usage=Usage(input_tokens=usage.get("prompt_tokens") or 0),
        )

    def classify_error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        try:
            data = orjson.loads(body) if body else {}
        except orjson.JSONDecodeError:
            data = {}  # an HTML error page from a proxy says nothing a client can use
        if not isinstance(data, dict):
            data = {}
        return _error_from_payload(status, data, headers)
