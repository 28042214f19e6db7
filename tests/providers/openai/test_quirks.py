"""OpenAI-compatible servers' quirks as data: renamed, dropped or refused parameters, stream usage."""

from __future__ import annotations

import orjson
import pytest

from sluicegate.canonical import ChatRequest
from sluicegate.config.schema import ProviderConfig
from sluicegate.errors import GatewayError
from sluicegate.providers.base import Endpoint
from sluicegate.providers.openai.adapter import OpenAIAdapter


def endpoint(quirks: str, policy: str = "drop") -> Endpoint:
    config = ProviderConfig(
        kind="openai_compatible",
        base_url="http://127.0.0.1:1/v1",
        quirks=quirks,
        unsupported_params=policy,  # type: ignore[arg-type]
    )
    return Endpoint("compat", config, "k")


def body(quirks: str, request: ChatRequest, policy: str = "drop") -> dict[str, object]:
    upstream = OpenAIAdapter("openai_compatible").chat_request(endpoint(quirks, policy), "m", request)
    return orjson.loads(upstream.body)  # type: ignore[no-any-return]


def test_mistral_renames_seed_drops_logit_bias_and_needs_no_stream_options() -> None:
    request = ChatRequest(
        model="m",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        max_tokens=9,
        user="u",
        params={"seed": 3, "logit_bias": {"1": 2}, "max_completion_tokens": 9},
    )
    sent = body("mistral", request)
    assert sent["random_seed"] == 3 and "seed" not in sent
    assert "logit_bias" not in sent and "user" not in sent and "stream_options" not in sent
    assert sent["max_tokens"] == 9 and "max_completion_tokens" not in sent


def test_refuse_policy_names_the_parameter() -> None:
    request = ChatRequest(model="m", messages=[{"role": "user", "content": "hi"}], params={"logprobs": True})
    with pytest.raises(GatewayError) as info:
        body("groq", request, "refuse")
    assert info.value.param == "logprobs" and info.value.status == 400


def test_plain_openai_passes_everything_and_asks_for_stream_usage() -> None:
    request = ChatRequest(
        model="m", messages=[{"role": "user", "content": "hi"}], stream=True, params={"logit_bias": {"1": 2}}
    )
    sent = body("openai", request)
    assert sent["logit_bias"] == {"1": 2} and sent["stream_options"] == {"include_usage": True}
