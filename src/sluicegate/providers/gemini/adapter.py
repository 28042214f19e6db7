"""The Gemini API adapter: URLs per model and method, the x-goog-api-key header, and error classes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import orjson

from sluicegate.canonical import ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse, Usage
from sluicegate.errors import GatewayError, UpstreamError
from sluicegate.providers.base import Endpoint, UpstreamRequest
from sluicegate.providers.gemini.errors import classify_payload
from sluicegate.providers.gemini.request import request_body
from sluicegate.providers.gemini.response import GeminiStreamDecoder, chat_response, load
from sluicegate.providers.sse import SSEParser


class GeminiAdapter:
    family = "gemini"

    def _headers(self, endpoint: Endpoint) -> dict[str, str]:
        headers = {"content-type": "application/json", **endpoint.config.headers}
        if endpoint.api_key:
            headers["x-goog-api-key"] = endpoint.api_key
        return headers

    def _url(self, endpoint: Endpoint, model: str, method: str) -> str:
        return f"{endpoint.config.base_url.rstrip('/')}/models/{quote(model, safe='')}:{method}"

    def chat_request(self, endpoint: Endpoint, model: str, request: ChatRequest) -> UpstreamRequest:
        body = request_body(request, endpoint.config.unsupported_params)
        method = "streamGenerateContent?alt=sse" if request.stream else "generateContent"
        return UpstreamRequest(self._url(endpoint, model, method), self._headers(endpoint), orjson.dumps(body))

    def chat_response(self, body: bytes) -> ChatResponse:
        return chat_response(body)

    def stream_decoder(self) -> GeminiStreamDecoder:
        return GeminiStreamDecoder()

    def stream_framer(self) -> SSEParser:
        return SSEParser()

    def embedding_request(self, endpoint: Endpoint, model: str, request: EmbeddingRequest) -> UpstreamRequest:
        inputs = [request.input] if isinstance(request.input, str) else request.input
        if not all(isinstance(text, str) for text in inputs):
            raise GatewayError(400, "Gemini embeds text only, not token arrays.", param="input")
        name = f"models/{model}"
        body: dict[str, Any] = {
            "requests": [{"model": name, "content": {"parts": [{"text": text}]}} for text in inputs]
        }
        if request.params.get("dimensions"):
            for item in body["requests"]:
                item["outputDimensionality"] = request.params["dimensions"]
        url = self._url(endpoint, model, "batchEmbedContents")
        return UpstreamRequest(url, self._headers(endpoint), orjson.dumps(body))

    def embedding_response(self, body: bytes) -> EmbeddingResponse:
        data = load(body, "response")
        vectors = [item.get("values") or [] for item in data.get("embeddings") or ()]
        return EmbeddingResponse(
            model="",
            data=[{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)],
            usage=Usage(),
            usage_reported=False,  # batchEmbedContents reports no token usage: the gateway counts it
        )

    def classify_error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        try:
            data = orjson.loads(body) if body else {}
        except orjson.JSONDecodeError:
            data = {}
        if isinstance(data, list) and data:
            data = data[0]
        return classify_payload(status, data if isinstance(data, dict) else {}, headers)
