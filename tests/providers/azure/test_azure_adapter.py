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


def test_azure_content_filter_and_context_errors_are_classified() -> None:
    from sluicegate.errors import ErrorClass

    filtered = orjson.dumps(
        {
            "error": {
                "message": "The response was filtered due to the prompt triggering Azure OpenAI's content management "
                "policy.",
                "type": None,
                "param": "prompt",
                "code": "content_filter",
                "status": 400,
            }
        }
    )
    assert ADAPTER.classify_error(400, {}, filtered).error_class is ErrorClass.CONTENT_POLICY
    too_long = orjson.dumps(
        {
            "error": {
                "message": "This model's maximum context length is 128000 tokens. However, your messages resulted in "
                "130000 tokens. Please reduce the length of the messages.",
                "type": "invalid_request_error",
                "param": "messages",
                "code": "context_length_exceeded",
            }
        }
    )
    assert ADAPTER.classify_error(400, {}, too_long).error_class is ErrorClass.CONTEXT_WINDOW
    throttled = orjson.dumps(
        {
            "error": {
                "code": "429",
                "message": "Requests to the ChatCompletions_Create Operation "
                "have exceeded call rate limit. Please retry after 6 seconds.",
            }
        }
    )
    error = ADAPTER.classify_error(429, {"retry-after": "6"}, throttled)
    assert error.error_class is ErrorClass.RATE_LIMITED and error.retry_after == 6


def test_azure_content_filter_finish_reason_passes_through() -> None:
    body = orjson.dumps(
        {
            "id": "chatcmpl-az",
            "object": "chat.completion",
            "created": 1,
            "model": "gpt-4o-mini",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": None}, "finish_reason": "content_filter"}
            ],
            "usage": {"prompt_tokens": 5, "completion_tokens": 0, "total_tokens": 5},
        }
    )
    response = ADAPTER.chat_response(body)
    assert response.choices[0]["finish_reason"] == "content_filter" and response.usage.input_tokens == 5
