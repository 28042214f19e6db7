"""The Bedrock Converse adapter: model URLs, SigV4 (or a Bedrock API key), and the binary stream framing."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote

import orjson

from sluicegate.canonical import ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse
from sluicegate.errors import ErrorClass, GatewayError, UpstreamError, scrub
from sluicegate.providers.base import Endpoint, UpstreamRequest
from sluicegate.providers.bedrock.framing import EventStreamFramer
from sluicegate.providers.bedrock.request import request_body
from sluicegate.providers.bedrock.response import BedrockStreamDecoder, chat_response, exception_class
from sluicegate.providers.bedrock.signing import credentials, region_of, sign
from sluicegate.providers.classify import classify_status, is_context_window_message, retry_after_seconds


def classify(status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
    """The exception name (x-amzn-ErrorType header, or `__type` in the body) decides; then the status."""
    try:
        data = orjson.loads(body) if body else {}
    except orjson.JSONDecodeError:
        data = {}
    data = data if isinstance(data, dict) else {}
    name = headers.get("x-amzn-errortype") or headers.get("x-amzn-ErrorType") or str(data.get("__type") or "")
    name = name.split(":", 1)[0].rsplit("#", 1)[-1]
    message = str(data.get("message") or data.get("Message") or "")
    error_class = exception_class(name) or classify_status(status, message, name)
    if error_class is ErrorClass.BAD_REQUEST:
        error_class = classify_status(400, message, name)
    if is_context_window_message(message):
        error_class = ErrorClass.CONTEXT_WINDOW
    return UpstreamError(
        error_class, scrub(message) or f"HTTP {status}", status=status, retry_after=retry_after_seconds(headers)
    )


class BedrockAdapter:
    family = "bedrock"

    def chat_request(self, endpoint: Endpoint, model: str, request: ChatRequest) -> UpstreamRequest:
        config = endpoint.config
        action = "converse-stream" if request.stream else "converse"
        url = f"{config.base_url.rstrip('/')}/model/{quote(model, safe='')}/{action}"
        body = orjson.dumps(request_body(request, config.unsupported_params, model))
        headers = {"content-type": "application/json", **config.headers}
        if endpoint.api_key:  # a Bedrock API key is a bearer token; otherwise sign with AWS credentials
            headers["authorization"] = f"Bearer {endpoint.api_key}"
            return UpstreamRequest(url, headers, body)
        if "authorization" in headers:  # configured by the operator (e.g. a signing proxy in front)
            return UpstreamRequest(url, headers, body)
        return UpstreamRequest(url, sign(url, body, headers, credentials(config), region_of(config)), body)

    def chat_response(self, body: bytes) -> ChatResponse:
        return chat_response(body)

    def stream_decoder(self) -> BedrockStreamDecoder:
        return BedrockStreamDecoder()

    def stream_framer(self) -> EventStreamFramer:
        return EventStreamFramer()

    def embedding_request(self, endpoint: Endpoint, model: str, request: EmbeddingRequest) -> UpstreamRequest:
        raise GatewayError(400, "Embeddings through Bedrock are not supported by Sluicegate yet.")

    def embedding_response(self, body: bytes) -> EmbeddingResponse:
        raise GatewayError(400, "Embeddings through Bedrock are not supported by Sluicegate yet.")

    def classify_error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        return classify(status, headers, body)
