"""Azure OpenAI: deployment URLs with api-version, api-key header or bearer token, OpenAI bodies."""

from __future__ import annotations

import orjson

from sluicegate.canonical import ChatRequest, EmbeddingRequest
from sluicegate.config.schema import ProviderConfig
from sluicegate.providers.azure.adapter import AzureOpenAIAdapter
from sluicegate.providers.base import Endpoint

ADAPTER = AzureOpenAIAdapter()


def test_chat_url_api_key_header_and_stream_usage() -> None:
    config = ProviderConfig(kind="azure", base_url="https://contoso.openai.azure.com", api_version="2024-10-21")
    request = ChatRequest(model="m", messages=[{"role": "user", "content": "hi"}], stream=True, max_tokens=5)
    upstream = ADAPTER.chat_request(Endpoint("az", config, "azure-key"), "gpt-4o-mini-prod", request)
    assert upstream.url == (
        "https://contoso.openai.azure.com/openai/deployments/gpt-4o-mini-prod/chat/completions?api-version=2024-10-21"
    )
    assert upstream.headers["api-key"] == "azure-key"
    assert "authorization" not in upstream.headers
    body = orjson.loads(upstream.body)
    assert "model" not in body
    assert body["stream_options"] == {"include_usage": True} and body["max_tokens"] == 5


def test_bearer_token_and_embeddings_url() -> None:
    config = ProviderConfig(kind="azure", base_url="https://contoso.openai.azure.com/openai/", azure_auth="bearer")
    upstream = ADAPTER.embedding_request(
        Endpoint("az", config, "entra-token"), "embed", EmbeddingRequest(model="e", input="hello")
    )
    assert upstream.url.startswith("https://contoso.openai.azure.com/openai/deployments/embed/embeddings?api-version=")
    assert upstream.headers["authorization"] == "Bearer entra-token"
    assert ADAPTER.family == "azure"
