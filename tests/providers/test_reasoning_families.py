"""Reasoning from the Gemini and Bedrock families, on payloads shaped as their API references show them."""

from __future__ import annotations

import orjson

from sluicegate.canonical import ChatRequest
from sluicegate.providers.bedrock.request import request_body as bedrock_body
from sluicegate.providers.bedrock.response import BedrockStreamDecoder
from sluicegate.providers.bedrock.response import chat_response as bedrock_response
from sluicegate.providers.gemini.request import request_body as gemini_body
from sluicegate.providers.gemini.response import GeminiStreamDecoder
from sluicegate.providers.gemini.response import chat_response as gemini_response

SIGNATURE = "ErUBCkYIBxgCIkDsig"


def test_gemini_thought_parts_become_reasoning_and_thinking_asks_for_them() -> None:
    body = {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [{"text": "**Weighing it up** first.", "thought": True}, {"text": "Blue light scatters."}],
                },
                "finishReason": "STOP",
            }
        ],
        "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 4, "thoughtsTokenCount": 30},
        "responseId": "r1",
    }
    response = gemini_response(orjson.dumps(body))
    message = response.choices[0]["message"]
    assert message["content"] == "Blue light scatters." and message["reasoning_content"] == "**Weighing it up** first."
    assert (response.usage.output_tokens, response.usage.reasoning_tokens) == (34, 30)
    [chunk] = GeminiStreamDecoder().decode(
        None, orjson.dumps({**body, "candidates": [{**body["candidates"][0], "finishReason": None}]})
    )
    assert chunk.choices[0]["delta"]["reasoning_content"] == "**Weighing it up** first."
    asked = ChatRequest(
        "g", [{"role": "user", "content": "x"}], params={"thinking": {"type": "enabled", "budget_tokens": 2000}}
    )
    assert gemini_body(asked, "refuse")["generationConfig"]["thinkingConfig"] == {
        "thinkingBudget": 2000,
        "includeThoughts": True,
    }
    effort = ChatRequest("g", [{"role": "user", "content": "x"}], params={"reasoning_effort": "minimal"})
    assert gemini_body(effort, "refuse")["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 0}


def test_bedrock_reasoning_blocks_round_trip_with_their_signature() -> None:
    body = {
        "output": {
            "message": {
                "role": "assistant",
                "content": [
                    {"reasoningContent": {"reasoningText": {"text": "Check the tool.", "signature": SIGNATURE}}},
                    {"reasoningContent": {"redactedContent": "cmVkYWN0ZWQ="}},
                    {"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather", "input": {"city": "Oslo"}}},
                ],
            }
        },
        "stopReason": "tool_use",
        "usage": {"inputTokens": 20, "outputTokens": 50, "totalTokens": 70},
    }
    message = bedrock_response(orjson.dumps(body)).choices[0]["message"]
    assert message["thinking_blocks"] == [
        {"type": "thinking", "thinking": "Check the tool.", "signature": SIGNATURE},
        {"type": "redacted_thinking", "data": "cmVkYWN0ZWQ="},
    ]
    history = [
        {"role": "user", "content": "Weather?"},
        message,
        {"role": "tool", "tool_call_id": "tooluse_1", "content": "4 C"},
    ]
    request = ChatRequest("m", history, max_tokens=4096, params={"reasoning_effort": "low"})  # type: ignore[arg-type]
    sent = bedrock_body(request, "refuse", "anthropic.claude-sonnet-4-5-v1:0")
    assert sent["additionalModelRequestFields"] == {"thinking": {"type": "enabled", "budget_tokens": 1024}}
    assert sent["messages"][1]["content"][:2] == body["output"]["message"]["content"][:2]  # type: ignore[index]
    assert "additionalModelRequestFields" not in bedrock_body(request, "drop", "amazon.nova-pro-v1:0")
    decoder = BedrockStreamDecoder()
    deltas = [
        decoder.decode("contentBlockDelta", orjson.dumps({"contentBlockIndex": 0, "delta": {"reasoningContent": r}}))[
            0
        ].choices[0]["delta"]
        for r in ({"text": "Hm."}, {"signature": SIGNATURE}, {"redactedContent": "cmVkYWN0ZWQ="})
    ]
    assert deltas == [
        {"reasoning_content": "Hm."},
        {"thinking_blocks": [{"type": "thinking", "thinking": "", "signature": SIGNATURE}]},
        {"thinking_blocks": [{"type": "redacted_thinking", "data": "cmVkYWN0ZWQ="}]},
    ]
