"""Azure OpenAI: `/openai/deployments/{deployment}/...?api-version=`, `api-key` header or an Entra bearer token.

The deployment's `model` is the Azure deployment name. Bodies, responses and streams are OpenAI's, so
the OpenAI adapter's transforms are reused unchanged.
"""

from __future__ import annotations

from urllib.parse import quote

import orjson

from sluicegate.canonical import ChatRequest, EmbeddingRequest
from sluicegate.providers.base import Endpoint, UpstreamRequest
from sluicegate.providers.openai.adapter import OpenAIAdapter
from sluicegate.providers.openai.quirks import OPENAI


def deployment_url(endpoint: Endpoint, deployment: str, operation: str) -> str:
    config = endpoint.config
    base = config.base_url.rstrip("/")
    if not base.endswith("/openai"):
        base += "/openai"
    return f"{base}/deployments/{quote(deployment, safe='')}/{operation}?api-version={quote(config.api_version)}"


class AzureOpenAIAdapter(OpenAIAdapter):
    def __init__(self) -> None:
        super().__init__("azure", OPENAI)

    def _headers(self, endpoint: Endpoint) -> dict[str, str]:
        headers = {"content-type": "application/json", **endpoint.config.headers}
        if endpoint.api_key:
            if endpoint.config.azure_auth == "bearer":
                headers["authorization"] = f"Bearer {endpoint.api_key}"
            else:
                headers["api-key"] = endpoint.api_key
        return headers

    def chat_request(self, endpoint: Endpoint, model: str, request: ChatRequest) -> UpstreamRequest:
        body = self.chat_body(endpoint, model, request)
        del body["model"]  # the deployment in the URL decides
        url = deployment_url(endpoint, model, "chat/completions")
        return UpstreamRequest(url, self._headers(endpoint), orjson.dumps(body))

    def embedding_request(self, endpoint: Endpoint, model: str, request: EmbeddingRequest) -> UpstreamRequest:
        body = {"input": request.input, **request.params}
        if request.user is not None:
            body["user"] = request.user
        url = deployment_url(endpoint, model, "embeddings")
        return UpstreamRequest(url, self._headers(endpoint), orjson.dumps(body))
