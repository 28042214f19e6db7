"""Cache keys: the same request always has the same key, whatever the order of its JSON fields; every field
that changes an answer changes the key; the few that cannot (who asks, delivery options) do not."""

from __future__ import annotations

from typing import Any

import pytest

from sluicegate.cache.key import CacheKey, namespace_of, pattern, request_digest
from sluicegate.canonical import ChatRequest
from sluicegate.principal import Principal

BASE: dict[str, Any] = {"temperature": 0.2, "response_format": {"type": "json_object", "schema": {"a": 1, "b": 2}}}


def digest(
    params: dict[str, Any] | None = None,
    messages: list[Any] | None = None,
    max_tokens: int | None = 100,
    group: str = "g",
    fingerprint: str = "f",
) -> str:
    request = ChatRequest(
        "g",
        messages or [{"role": "user", "content": "hi"}],
        max_tokens=max_tokens,
        params=dict(BASE if params is None else params),
    )
    return request_digest(request, group, fingerprint)


def test_golden_key_does_not_depend_on_field_order() -> None:
    reordered = {"response_format": {"schema": {"b": 2, "a": 1}, "type": "json_object"}, "temperature": 0.2}
    assert digest() == digest(reordered)
    assert digest() == "f10ad1ae970408c38b01bac5eacd55f8"  # a change of recipe must be deliberate (VERSION)


@pytest.mark.parametrize(
    "change",
    [
        {"temperature": 0.3},
        {"top_p": 0.5},
        {"seed": 1},
        {"stop": ["\n"]},
        {"n": 2},
        {"logprobs": True},
        {"tools": [{"type": "function", "function": {"name": "f"}}]},
        {"tool_choice": "none"},
        {"response_format": {"type": "text"}},
        {"frequency_penalty": 1},
        {"some_new_provider_field": 1},
    ],
)
def test_every_field_that_changes_the_answer_changes_the_key(change: dict[str, Any]) -> None:
    assert digest({**BASE, **change}) != digest()


def test_messages_group_deployments_and_max_tokens_are_in_the_key() -> None:
    assert digest(messages=[{"role": "user", "content": "hi!"}]) != digest()
    assert digest(messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]) != digest()
    assert digest(max_tokens=101) != digest()
    assert digest(group="other") != digest() and digest(fingerprint="other") != digest()


@pytest.mark.parametrize("field", ["user", "metadata", "stream_options", "store", "prompt_cache_key", "service_tier"])
def test_who_asks_and_how_it_is_delivered_are_not(field: str) -> None:
    assert digest({**BASE, field: {"x": 1} if field == "metadata" else "v"}) == digest()


def test_namespaces_never_cross_tenants_and_patterns_find_them() -> None:
    alice = Principal("k1", tenant_id="t1", team_id="a")
    bob = Principal("k2", tenant_id="t2", team_id="a")
    assert namespace_of(alice, "tenant") != namespace_of(bob, "tenant")
    assert namespace_of(alice, "team") == "tenant:t1/team:a" != namespace_of(bob, "team")
    assert namespace_of(alice, "key") == "tenant:t1/key:k1"
    key = CacheKey("tenant:t1/team:a", "g", "d" * 32).store_key
    tenant_part, space, group, entry = key.split(":")
    assert pattern("tenant:t1", None, None)[0] == tenant_part  # a tenant matches every namespace inside it
    assert pattern("tenant:t1/team:a", None, None)[1] == space
    assert pattern(None, "g", "d" * 32)[2:] == (group, entry)


def test_a_cache_configured_without_its_stage_or_for_an_unknown_group_is_refused() -> None:
    from sluicegate.config.schema import GatewayConfig

    base = {
        "providers": {"p": {"kind": "openai", "base_url": "http://127.0.0.1:9"}},
        "models": [{"name": "m", "deployments": [{"provider": "p", "model": "m"}]}],
    }
    unlisted = GatewayConfig.model_validate({**base, "response_cache": {}})
    assert [m for _, m in unlisted.reference_problems()] == ["response_cache is configured but not in pipeline.stages"]
    wrong = GatewayConfig.model_validate(
        {**base, "pipeline": {"stages": ["response_cache"]}, "response_cache": {"store": "redis", "groups": {"x": {}}}}
    )
    problems = [m for _, m in wrong.reference_problems()]
    assert problems == ["unknown response cache model 'x' (expected one of: m)", "store: redis needs redis.url"]
