"""The Anthropic Messages API adapter: URL, headers, and the request/response/stream transforms."""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from sluicegate.canonical import ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse
from sluicegate.errors import ErrorClass, GatewayError, UpstreamError, scrub
from sluicegate.providers.anthropic.request import request_body
from sluicegate.providers.anthropic.response import ERROR_TYPES, AnthropicStreamDecoder, chat_response
from sluicegate.providers.base import Endpoint, UpstreamRequest
from sluicegate.providers.classify import classify_status, is_context_window_message, retry_after_seconds
from sluicegate.providers.sse import SSEParser


def messages_url(base_url: str) -> str:
    base = base_url.rstrip("/")
    return f"{base}/messages" if base.endswith("/v1") else f"{base}/v1/messages"


def classify(status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
    """`{"type": "error", "error": {"type", "message"}}`: the type decides, the status backs it up."""
    try:
        data = orjson.loads(body) if body else {}
    except orjson.JSONDecodeError:
        data = {}
    error = data.get("error") if isinstance(data, dict) else None
    error = error if isinstance(error, dict) else {}
    kind = str(error.get("type") or "")
    message = str(error.get("message") or "")
    error_class = ERROR_TYPES.get(kind) or classify_status(status, message, kind)
    if error_class is ErrorClass.BAD_REQUEST:
        error_class = classify_status(status if status < 500 else 400, message, kind)
    if is_context_window_message(message):
        error_class = ErrorClass.CONTEXT_WINDOW
    return UpstreamError(
        error_class, scrub(message) or f"HTTP {status}", status=status, retry_after=retry_after_seconds(headers)
    )


class AnthropicAdapter:
    family = "anthropic"

    def chat_request(self, endpoint: Endpoint, model: str, request: ChatRequest) -> UpstreamRequest:
        config = endpoint.config
        headers = {"content-type": "application/json", "anthropic-version": config.anthropic_version, **config.headers}
        if endpoint.api_key:
            headers["x-api-key"] = endpoint.api_key
        body = request_body(model, request, config.unsupported_params)
        return UpstreamRequest(messages_url(config.base_url), headers, orjson.dumps(body))

    def chat_response(self, body: bytes) -> ChatResponse:
        return chat_response(body)

    def stream_decoder(self) -> AnthropicStreamDecoder:
        return AnthropicStreamDecoder()

    def stream_framer(self) -> SSEParser:
        return SSEParser()

    def embedding_request(self, endpoint: Endpoint, model: str, request: EmbeddingRequest) -> UpstreamRequest:
        raise GatewayError(400, "Anthropic has no embeddings API; route embeddings to another provider.")

    def embedding_response(self, body: bytes) -> EmbeddingResponse:
        raise GatewayError(400, "Anthropic has no embeddings API.")

    def classify_error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        return classify(status, headers, body)
