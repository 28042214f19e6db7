"""The Gemini adapter against payloads written from the Gemini API reference (generateContent, SSE stream)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from sluicegate.canonical import ChatChunk, ChatRequest
from sluicegate.config.schema import ProviderConfig
from sluicegate.errors import ErrorClass, GatewayError, UpstreamError
from sluicegate.providers.base import Endpoint
from sluicegate.providers.gemini.adapter import GeminiAdapter
from sluicegate.providers.sse import SSEParser

FIXTURES = Path(__file__).parents[2] / "fixtures" / "gemini"
ADAPTER = GeminiAdapter()
ENDPOINT = Endpoint(
    "gemini",
    ProviderConfig(kind="gemini", base_url="https://generativelanguage.googleapis.com/v1beta"),
    "AIza-test",
)


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def decode_stream(raw: bytes) -> tuple[list[ChatChunk], bool]:
    decoder = ADAPTER.stream_decoder()
    parser = SSEParser()
    chunks: list[ChatChunk] = []
    for i in range(0, len(raw), 53):
        for event, data in parser.feed(raw[i : i + 53]):
            chunks.extend(decoder.decode(event, data))
    return chunks, decoder.done


def test_request_url_header_roles_system_images_tools_and_results() -> None:
    request = ChatRequest(
        model="g",
        messages=[
            {"role": "system", "content": "Answer in French."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Weather?"},
                    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}},
                ],
            },
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "w", "arguments": '{"c":"Nice"}'}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": '{"temp": 21}'},
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        ],
        stream=True,
        max_tokens=100,
        params={
            "temperature": 1.5,
            "stop": ["\n\n"],
            "n": 2,
            "tools": [
                {"type": "function", "function": {"name": "w", "description": "weather", "parameters": {}}},
                {
                    "type": "function",
                    "function": {"name": "v", "parameters": {"type": "object", "additionalProperties": False}},
                },
            ],
            "tool_choice": {"type": "function", "function": {"name": "w"}},
            "response_format": {"type": "json_object"},
        },
    )
    upstream = ADAPTER.chat_request(ENDPOINT, "gemini-2.0-flash", request)
    assert upstream.url == (
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
    )
    assert upstream.headers["x-goog-api-key"] == "AIza-test"
    body = orjson.loads(upstream.body)
    assert body["systemInstruction"] == {"parts": [{"text": "Answer in French."}]}
    user, model, results = body["contents"]
    assert user["role"] == "user" and user["parts"][1] == {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4AAQ"}}
    assert model == {"role": "model", "parts": [{"functionCall": {"id": "c1", "name": "w", "args": {"c": "Nice"}}}]}
    responses = [p["functionResponse"] for p in results["parts"]]
    assert responses[0] == {"id": "c1", "name": "w", "response": {"temp": 21}}
    assert responses[1]["response"] == {"result": "sunny"}
    config = body["generationConfig"]
    assert config == {
        "temperature": 1.5,
        "stopSequences": ["\n\n"],
        "candidateCount": 2,
        "maxOutputTokens": 100,
        "responseMimeType": "application/json",
    }
    assert body["tools"] == [
        {
            "functionDeclarations": [
                {"name": "w", "description": "weather"},
                {"name": "v", "parametersJsonSchema": {"type": "object", "additionalProperties": False}},
            ]
        }
    ]
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["w"]}}


def test_remote_image_urls_are_refused_with_a_clear_400() -> None:
    request = ChatRequest(
        model="g",
        messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}],
    )
    with pytest.raises(GatewayError) as info:
        ADAPTER.chat_request(ENDPOINT, "g", request)
    assert info.value.status == 400


def test_usage_includes_cached_and_thinking_tokens_and_thoughts_are_not_text() -> None:
    response = ADAPTER.chat_response(fixture("response_text_cached_thinking.json"))
    assert response.choices[0]["message"]["content"] == "The answer is 42."
    assert response.choices[0]["finish_reason"] == "stop"
    usage = response.usage
    assert (usage.input_tokens, usage.cached_input_tokens) == (2100, 2048)
    assert (usage.output_tokens, usage.reasoning_tokens) == (56, 50)


def test_two_function_calls_finish_as_tool_calls_with_distinct_ids() -> None:
    response = ADAPTER.chat_response(fixture("response_tools.json"))
    choice = response.choices[0]
    assert choice["finish_reason"] == "tool_calls"
    calls = choice["message"]["tool_calls"]
    assert [orjson.loads(c["function"]["arguments"]) for c in calls] == [
        {"location": "Boston, MA"},
        {"location": "Paris"},
    ]
    assert len({c["id"] for c in calls}) == 2


def test_safety_stop_is_content_filter_and_a_blocked_prompt_is_content_policy() -> None:
    assert ADAPTER.chat_response(fixture("response_safety.json")).choices[0]["finish_reason"] == "content_filter"
    with pytest.raises(UpstreamError) as info:
        ADAPTER.chat_response(fixture("response_prompt_blocked.json"))
    assert info.value.error_class is ErrorClass.CONTENT_POLICY


def test_malformed_function_call_is_an_upstream_failure_never_stop() -> None:
    with pytest.raises(UpstreamError) as info:
        ADAPTER.chat_response(fixture("response_malformed_call.json"))
    assert info.value.error_class is ErrorClass.SERVER_ERROR
    assert "MALFORMED_FUNCTION_CALL" in info.value.message


def test_stream_text_takes_the_last_cumulative_usage() -> None:
    chunks, done = decode_stream(fixture("stream_text.sse"))
    assert done
    text = "".join(c.choices[0]["delta"].get("content") or "" for c in chunks if c.choices)
    assert text == "The quick brown fox jumps."
    assert chunks[0].choices[0]["delta"]["role"] == "assistant"
    usage_chunks = [c for c in chunks if c.usage is not None]
    assert len(usage_chunks) == 1  # never a duplicated usage chunk
    assert (usage_chunks[0].usage.input_tokens, usage_chunks[0].usage.output_tokens) == (8, 7)  # type: ignore[union-attr]


def test_stream_parallel_function_calls_get_their_own_indexes() -> None:
    chunks, _ = decode_stream(fixture("stream_tools.sse"))
    calls = [call for c in chunks for ch in c.choices for call in ch["delta"].get("tool_calls") or ()]
    assert [call["index"] for call in calls] == [0, 1]
    assert [call["function"]["name"] for call in calls] == ["get_weather", "get_time"]
    assert [c.choices[0]["finish_reason"] for c in chunks if c.choices][-1] == "tool_calls"


@pytest.mark.parametrize(
    ("status", "name", "expected"),
    [
        (429, "error_exhausted.json", ErrorClass.RATE_LIMITED),
        (400, "error_context.json", ErrorClass.CONTEXT_WINDOW),
        (400, "error_api_key.json", ErrorClass.BAD_REQUEST),
    ],
)
def test_errors_are_classified(status: int, name: str, expected: ErrorClass) -> None:
    assert ADAPTER.classify_error(status, {}, fixture(name)).error_class is expected


def test_unavailable_is_overloaded() -> None:
    body = b'{"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}'
    assert ADAPTER.classify_error(503, {}, body).error_class is ErrorClass.OVERLOADED


def test_reasoning_effort_becomes_a_thinking_budget() -> None:
    request = ChatRequest(model="g", messages=[{"role": "user", "content": "hi"}], params={"reasoning_effort": "low"})
    body = orjson.loads(ADAPTER.chat_request(ENDPOINT, "gemini-2.5-flash", request).body)
    # The thoughts are asked for too, so that they are relayed (docs/providers.md, reasoning).
    assert body["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 1024, "includeThoughts": True}
    bad = ChatRequest(model="g", messages=[{"role": "user", "content": "hi"}], params={"reasoning_effort": "max"})
    with pytest.raises(GatewayError):
        ADAPTER.chat_request(ENDPOINT, "g", bad)
