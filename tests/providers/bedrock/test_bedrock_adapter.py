"""The Bedrock Converse adapter: SigV4 through botocore, event-stream framing, payloads from the API reference."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from sluicegate.canonical import ChatChunk, ChatRequest
from sluicegate.config.schema import ProviderConfig
from sluicegate.errors import ErrorClass, UpstreamError
from sluicegate.providers.base import Endpoint
from sluicegate.providers.bedrock.adapter import BedrockAdapter
from sluicegate.providers.bedrock.framing import EventStreamFramer
from sluicegate.providers.simulator.bedrock_format import event, frame

FIXTURES = Path(__file__).parents[2] / "fixtures" / "bedrock"
ADAPTER = BedrockAdapter()
CONFIG = ProviderConfig(
    kind="bedrock",
    base_url="https://bedrock-runtime.eu-west-1.amazonaws.com",
    aws_access_key_id_env="TEST_AWS_KEY",
    aws_secret_access_key_env="TEST_AWS_SECRET",
    aws_session_token_env="TEST_AWS_TOKEN",
)
MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def stream_bytes() -> bytes:
    return b"".join(event(name, payload) for name, payload in orjson.loads(fixture("stream_tools.json")))


def decode(raw: bytes, step: int) -> tuple[list[ChatChunk], bool]:
    framer = EventStreamFramer()
    decoder = ADAPTER.stream_decoder()
    chunks: list[ChatChunk] = []
    for i in range(0, len(raw), step):
        for name, payload in framer.feed(raw[i : i + step]):
            chunks.extend(decoder.decode(name, payload))
    return chunks, decoder.done


def test_request_is_signed_with_sigv4_from_environment_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_AWS_KEY", "AKIDEXAMPLE")
    monkeypatch.setenv("TEST_AWS_SECRET", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    monkeypatch.setenv("TEST_AWS_TOKEN", "session-token")
    request = ChatRequest(model="b", messages=[{"role": "user", "content": "hi"}], stream=True)
    upstream = ADAPTER.chat_request(Endpoint("b", CONFIG), MODEL, request)
    assert upstream.url == (
        "https://bedrock-runtime.eu-west-1.amazonaws.com/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse-stream"
    )
    auth = upstream.headers["Authorization"]
    assert auth.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/eu-west-1/bedrock/aws4_request" in auth and "Signature=" in auth
    assert upstream.headers["X-Amz-Security-Token"] == "session-token"
    assert "X-Amz-Date" in upstream.headers


def test_missing_credentials_are_an_auth_failure_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_AWS_KEY", raising=False)
    request = ChatRequest(model="b", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(UpstreamError) as info:
        ADAPTER.chat_request(Endpoint("b", CONFIG), MODEL, request)
    assert info.value.error_class is ErrorClass.AUTH
    assert "TEST_AWS_KEY" in info.value.message


def test_request_body_maps_system_inference_config_tools_and_results() -> None:
    request = ChatRequest(
        model="b",
        messages=[
            {"role": "system", "content": "Be exact."},
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
            {
                "role": "assistant",
                "content": "Looking.",
                "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "s", "arguments": '{"a": 1}'}}],
            },
            {"role": "tool", "tool_call_id": "t1", "content": "42"},
        ],
        max_tokens=50,
        params={
            "temperature": 0.2,
            "top_p": 0.9,
            "stop": ["STOP"],
            "tools": [{"type": "function", "function": {"name": "s", "parameters": {"type": "object"}}}],
            "tool_choice": "auto",
        },
    )
    upstream = ADAPTER.chat_request(Endpoint("b", CONFIG, api_key="bedrock-api-key"), MODEL, request)
    assert upstream.headers["authorization"] == "Bearer bedrock-api-key"
    body = orjson.loads(upstream.body)
    assert body["system"] == [{"text": "Be exact."}]
    assert body["inferenceConfig"] == {"temperature": 0.2, "topP": 0.9, "stopSequences": ["STOP"], "maxTokens": 50}
    user, assistant, result = body["messages"]
    assert user["content"] == [{"image": {"format": "png", "source": {"bytes": "AAAA"}}}]
    assert assistant["content"][1] == {"toolUse": {"toolUseId": "t1", "name": "s", "input": {"a": 1}}}
    assert result == {"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": [{"text": "42"}]}}]}
    assert body["toolConfig"]["toolChoice"] == {"auto": {}}
    assert body["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"] == {"json": {"type": "object"}}


def test_response_tool_use_and_cache_usage() -> None:
    response = ADAPTER.chat_response(fixture("response_tools.json"))
    choice = response.choices[0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"][0]["id"] == "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q"
    assert (response.usage.input_tokens, response.usage.cached_input_tokens) == (475, 100)


def test_guardrail_is_content_filter() -> None:
    assert ADAPTER.chat_response(fixture("response_guardrail.json")).choices[0]["finish_reason"] == "content_filter"


@pytest.mark.parametrize("step", [1, 7, 64, 100_000])
def test_event_stream_decodes_at_any_read_boundary(step: int) -> None:
    chunks, done = decode(stream_bytes(), step)
    assert done
    calls: dict[int, str] = {}
    ids: dict[int, str] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            for call in choice["delta"].get("tool_calls") or ():
                calls[call["index"]] = calls.get(call["index"], "") + call["function"].get("arguments", "")
                if call.get("id"):
                    ids[call["index"]] = call["id"]
    assert ids == {0: "tooluse_A1", 1: "tooluse_B2"}
    assert [orjson.loads(calls[i]) for i in (0, 1)] == [{"sign": "WZPZ"}, {"sign": "KXYZ"}]
    usage = chunks[-1].usage
    assert usage is not None and (usage.input_tokens, usage.cache_write_tokens, usage.output_tokens) == (425, 50, 61)


def test_corrupt_frame_and_stream_exception_are_classified() -> None:
    good = event("messageStart", {"role": "assistant"})
    with pytest.raises(UpstreamError):
        decode(good[:-4] + b"\x00\x00\x00\x00", 1000)
    throttled = frame(
        {":exception-type": "throttlingException", ":content-type": "application/json", ":message-type": "exception"},
        b'{"message": "Too many tokens"}',
    )
    with pytest.raises(UpstreamError) as info:
        decode(good + throttled, 1000)
    assert info.value.error_class is ErrorClass.RATE_LIMITED


@pytest.mark.parametrize(
    ("status", "error_type", "name", "expected"),
    [
        (
            429,
            "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/",
            "error_throttling.json",
            ErrorClass.RATE_LIMITED,
        ),
        (400, "ValidationException", "error_context.json", ErrorClass.CONTEXT_WINDOW),
        (503, "ServiceUnavailableException", "error_throttling.json", ErrorClass.OVERLOADED),
        (403, "AccessDeniedException", "error_throttling.json", ErrorClass.AUTH),
    ],
)
def test_errors_are_classified(status: int, error_type: str, name: str, expected: ErrorClass) -> None:
    error = ADAPTER.classify_error(status, {"x-amzn-errortype": error_type}, fixture(name))
    assert error.error_class is expected
