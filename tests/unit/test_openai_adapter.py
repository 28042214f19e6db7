from __future__ import annotations

import orjson
import pytest

from sluicegate.canonical import ChatRequest
from sluicegate.config.schema import ProviderConfig
from sluicegate.errors import ErrorClass
from sluicegate.providers.base import Endpoint
from sluicegate.providers.openai.adapter import OpenAIAdapter

ENDPOINT = Endpoint(
    "p", ProviderConfig(kind="openai", base_url="http://127.0.0.1:9/v1/", headers={"x-org": "o"}), "sk-up"
)


def test_request_forwards_params_and_always_asks_for_stream_usage() -> None:
    request = ChatRequest(
        "logical",
        [{"role": "user", "content": "hi"}],
        stream=True,
        include_usage=False,
        max_tokens=5,
        params={"max_completion_tokens": 7, "tools": [], "seed": 1},
    )
    upstream = OpenAIAdapter().chat_request(ENDPOINT, "provider-model", request)
    body = orjson.loads(upstream.body)
    assert upstream.url == "http://127.0.0.1:9/v1/chat/completions"
    assert upstream.headers["authorization"] == "Bearer sk-up"
    assert upstream.headers["x-org"] == "o"
    assert body["model"] == "provider-model"
    assert body["stream_options"] == {"include_usage": True}
    assert body["max_completion_tokens"] == 5 and "max_tokens" not in body
    assert body["tools"] == [] and body["seed"] == 1


def test_response_usage_details_are_read() -> None:
    body = orjson.dumps(
        {
            "id": "x",
            "object": "chat.completion",
            "created": 1,
            "model": "m",
            "system_fingerprint": "fp",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "a"}, "finish_reason": "stop"}],
            "usage": {
                "prompt_tokens": 10,
                "completion_tokens": 3,
                "total_tokens": 13,
                "prompt_tokens_details": {"cached_tokens": 4},
                "completion_tokens_details": {"reasoning_tokens": 2},
            },
        }
    )
    response = OpenAIAdapter().chat_response(body)
    assert (response.usage.input_tokens, response.usage.output_tokens) == (10, 3)
    assert (response.usage.cached_input_tokens, response.usage.reasoning_tokens) == (4, 2)
    assert response.extra == {"system_fingerprint": "fp"}


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (429, {"error": {"message": "Rate limit reached", "code": "rate_limit_exceeded"}}, ErrorClass.RATE_LIMITED),
        (429, {"error": {"message": "You exceeded your quota", "code": "insufficient_quota"}}, ErrorClass.AUTH),
        (
            400,
            {
                "error": {
                    "message": "This model's maximum context length is 8192 tokens",
                    "code": "context_length_exceeded",
                }
            },
            ErrorClass.CONTEXT_WINDOW,
        ),
        (400, {"error": {"message": "flagged", "code": "content_policy_violation"}}, ErrorClass.CONTENT_POLICY),
        (400, {"error": {"message": "bad", "code": None}}, ErrorClass.BAD_REQUEST),
        (401, {"error": {"message": "Incorrect API key provided: sk-abc*****1234"}}, ErrorClass.AUTH),
        (500, {"error": {"message": "oops"}}, ErrorClass.SERVER_ERROR),
        (503, {"error": {"message": "overloaded"}}, ErrorClass.OVERLOADED),
        (504, {}, ErrorClass.TIMEOUT),
    ],
)
def test_errors_are_classified(status: int, body: dict, expected: ErrorClass) -> None:
    error = OpenAIAdapter().classify_error(status, {"retry-after": "3"}, orjson.dumps(body))
    assert error.error_class == expected
    assert error.retry_after == 3.0


def test_error_messages_lose_anything_like_a_key() -> None:
    error = OpenAIAdapter().classify_error(
        401, {}, orjson.dumps({"error": {"message": "bad key sk-proj-abcdefghijklmnop"}})
    )
    assert "abcdefghijklmnop" not in error.message


def test_non_json_error_body_still_classifies() -> None:
    error = OpenAIAdapter().classify_error(502, {}, b"<html>Bad gateway</html>")
    assert error.error_class == ErrorClass.SERVER_ERROR


def test_reasoning_models_get_max_completion_tokens_even_when_the_gateway_sets_the_limit() -> None:
    request = ChatRequest("logical", [{"role": "user", "content": "hi"}], max_tokens=64)
    body = orjson.loads(OpenAIAdapter().chat_request(ENDPOINT, "o3-mini", request).body)
    assert body["max_completion_tokens"] == 64 and "max_tokens" not in body
    body = orjson.loads(OpenAIAdapter().chat_request(ENDPOINT, "gpt-4o-mini", request).body)
    assert body["max_tokens"] == 64 and "max_completion_tokens" not in body
