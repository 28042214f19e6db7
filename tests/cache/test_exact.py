"""The exact response cache through a whole gateway: hits, every eligibility rule, namespaces, accounting,
invalidation, on the memory store (the Redis store's own cases are in test_redis_store.py)."""

from __future__ import annotations

import httpx
import pytest

from tests.cache.conftest import MASTER, Factory

STATUS = "x-sluice-cache"


async def test_the_second_ask_is_a_hit_recorded_at_zero_cost_with_what_it_saved(cache_gateway: Factory) -> None:
    gw = await cache_gateway()
    first = await gw.ask()
    second = await gw.ask()
    assert first.status_code == second.status_code == 200
    assert first.headers[STATUS] == "miss" and second.headers[STATUS] == "hit-exact"
    assert second.json()["choices"] == first.json()["choices"]
    assert second.headers["x-sluice-cost-usd"] == "0.000000" and "x-sluice-deployment" not in second.headers
    assert second.headers["x-sluice-cache-key"] == first.headers["x-sluice-cache-key"]
    metrics = (await gw.client.get("/metrics")).text
    assert 'sluicegate_response_cache_lookups_total{group="gpt-4o-mini",result="hit-exact"} 1.0' in metrics
    assert 'sluicegate_response_cache_lookups_total{group="gpt-4o-mini",result="miss"} 1.0' in metrics
    await gw.gateway.stop()
    paid = gw.ledger(first.headers["x-sluice-request-id"])
    hit = gw.ledger(second.headers["x-sluice-request-id"])
    assert paid["cache_status"] == "miss" and paid["cost_micros"] > 0 and paid["input_tokens"] > 0
    assert hit["cache_status"] == "hit-exact" and hit["outcome"] == "ok"
    assert (hit["cost_micros"], hit["input_tokens"], hit["output_tokens"]) == (0, 0, 0)
    assert hit["saved_micros"] == paid["cost_micros"] and hit["deployment"] is None


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]}, "tools"),
        ({"temperature": 1.5}, "temperature"),
    ],
)
async def test_requests_with_tools_or_a_high_temperature_are_skipped(
    cache_gateway: Factory, params: dict[str, object], reason: str
) -> None:
    gw = await cache_gateway()
    for _ in range(2):
        answer = await gw.ask(**params)
        assert answer.status_code == 200
        assert (answer.headers[STATUS], answer.headers["x-sluice-cache-skip-reason"]) == ("skip", reason)


async def test_tools_and_temperature_bound_follow_the_configuration(cache_gateway: Factory) -> None:
    gw = await cache_gateway("{store: memory, allow_tools: true, max_temperature: 0.2}")
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    assert (await gw.ask(tools=tools, temperature=0)).headers[STATUS] == "miss"
    assert (await gw.ask(tools=tools, temperature=0)).headers[STATUS] == "hit-exact"
    assert (await gw.ask(temperature=0.3)).headers[STATUS] == "skip"


async def test_cache_control_and_ttl_headers_in_both_ingress_formats(cache_gateway: Factory) -> None:
    gw = await cache_gateway()
    # no-store: looked up, not kept
    assert (await gw.ask(content="a", headers={"cache-control": "no-store"})).headers[STATUS] == "miss"
    assert (await gw.ask(content="a")).headers[STATUS] == "miss"
    # no-cache: not looked up, but kept
    assert (await gw.ask(content="b", headers={"cache-control": "no-cache"})).headers[STATUS] == "skip"
    assert (await gw.ask(content="b", headers={"Cache-Control": "no-cache"})).headers[STATUS] == "skip"
    assert (await gw.ask(content="b")).headers[STATUS] == "hit-exact"
    # a TTL of 0 keeps nothing
    assert (await gw.ask(content="c", headers={"x-sluice-cache-ttl": "0"})).headers[STATUS] == "miss"
    assert (await gw.ask(content="c")).headers[STATUS] == "miss"
    # a bad TTL is a 400 in the client's own format
    bad = await gw.ask(content="d", headers={"x-sluice-cache-ttl": "soon"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_cache_ttl"
    anthropic_body = {"model": "gpt-4o-mini", "max_tokens": 50, "messages": [{"role": "user", "content": "e"}]}
    auth = {"x-api-key": MASTER, "anthropic-version": "2023-06-01"}
    bad = await gw.client.post("/v1/messages", json=anthropic_body, headers={**auth, "x-sluice-cache-ttl": "-1"})
    assert bad.status_code == 400 and bad.json()["type"] == "error"
    assert bad.json()["error"]["type"] == "invalid_request_error"
    sent = [
        await gw.client.post("/v1/messages", json=anthropic_body, headers={**auth, **h})
        for h in ({"cache-control": "no-store"}, {}, {}, {"cache-control": "no-cache"})
    ]
    assert [r.headers[STATUS] for r in sent] == ["miss", "miss", "hit-exact", "skip"]
    assert sent[2].json()["content"] == sent[1].json()["content"]


async def test_a_ttl_expires_the_answer(cache_gateway: Factory) -> None:
    gw = await cache_gateway("{store: memory, ttl_seconds: 60}")
    clock_start = gw.gateway.clock.monotonic()
    assert (await gw.ask(headers={"x-sluice-cache-ttl": "5"})).headers[STATUS] == "miss"
    assert (await gw.ask()).headers[STATUS] == "hit-exact"
    store = gw.gateway.pipeline.stages[[s.name for s in gw.gateway.pipeline.stages].index("response_cache")].store  # type: ignore[attr-defined]
    store._clock = lambda: clock_start + 6  # the memory store reads the gateway's monotonic clock
    assert (await gw.ask()).headers[STATUS] == "miss"


async def test_keys_and_teams_can_opt_out(cache_gateway: Factory) -> None:
    gw = await cache_gateway("{store: memory, disabled_for: ['team:quiet']}")
    opted = await gw.key("acme", metadata={"response_cache": "off"})
    quiet = await gw.key("acme", team="quiet")
    for key in (opted, quiet):
        for _ in range(2):
            answer = await gw.ask(key)
            assert (answer.headers[STATUS], answer.headers["x-sluice-cache-skip-reason"]) == ("skip", "opt-out")


async def test_errors_and_cut_answers_are_never_kept(cache_gateway: Factory, sim_control: httpx.Client) -> None:
    gw = await cache_gateway()
    sim_control.put("/_sim/faults/faulty-model", json={"faults": [{"type": "server_error"}]})
    for _ in range(2):
        failed = await gw.client.post(
            "/v1/chat/completions",
            json={"model": "faulty", "messages": [{"role": "user", "content": "x"}]},
            headers={"authorization": f"Bearer {MASTER}"},
        )
        assert failed.status_code >= 400
    cut = [await gw.ask(content="Tell me a long story", max_tokens=2) for _ in range(2)]
    assert cut[0].json()["choices"][0]["finish_reason"] == "length"
    assert [r.headers[STATUS] for r in cut] == ["miss", "miss"]
    assert 'result="hit-exact"' not in (await gw.client.get("/metrics")).text


async def test_tenants_never_see_each_others_answers_and_teams_or_keys_by_configuration(cache_gateway: Factory) -> None:
    gw = await cache_gateway()
    a1, a2, b = await gw.key("ta"), await gw.key("ta", team="ta-other"), await gw.key("tb")
    assert (await gw.ask(a1)).headers[STATUS] == "miss"
    assert (await gw.ask(b)).headers[STATUS] == "miss"  # the same question in another tenant
    assert (await gw.ask(a2)).headers[STATUS] == "hit-exact"  # the same tenant: shared by default
    by_team = await cache_gateway("{store: memory, namespace: team}")
    t1, t2 = await by_team.key("tc"), await by_team.key("tc", team="tc-other")
    assert [(await by_team.ask(k)).headers[STATUS] for k in (t1, t2, t1)] == ["miss", "miss", "hit-exact"]
    by_key = await cache_gateway("{store: memory, namespace: key}")
    k1, k2 = await by_key.key("td"), await by_key.key("td")
    assert [(await by_key.ask(k)).headers[STATUS] for k in (k1, k2, k1)] == ["miss", "miss", "hit-exact"]


async def test_invalidation_by_namespace_group_and_key_through_the_admin_api(cache_gateway: Factory) -> None:
    gw = await cache_gateway()
    a, b = await gw.key("ia"), await gw.key("ib")
    for key in (a, b):
        await gw.ask(key, content="one")
        await gw.ask(key, content="two")
    dropped = await gw.admin("POST", "/admin/response-cache/invalidate", {"namespace": "tenant:ia"})
    assert dropped == {"dropped": 2}
    assert (await gw.ask(b, content="one")).headers[STATUS] == "hit-exact"
    digest = (await gw.ask(b, content="two")).headers["x-sluice-cache-key"]
    assert await gw.admin("POST", "/admin/response-cache/invalidate", {"key": digest}) == {"dropped": 1}
    assert (await gw.ask(b, content="two")).headers[STATUS] == "miss"
    assert await gw.admin("POST", "/admin/response-cache/invalidate", {"group": "gpt-4o-mini"}) == {"dropped": 2}
    assert (await gw.ask(b, content="one")).headers[STATUS] == "miss"
    refused = await gw.client.post(
        "/admin/response-cache/invalidate", json={}, headers={"authorization": f"Bearer {MASTER}"}
    )
    assert refused.status_code == 400
    viewer = await gw.client.post(
        "/admin/response-cache/invalidate", json={"all": True}, headers={"authorization": f"Bearer {a}"}
    )
    assert viewer.status_code in (401, 403)


def test_only_answers_that_ended_by_themselves_are_complete() -> None:
    from sluicegate.cache.entry import complete
    from sluicegate.canonical import ChatResponse, Usage

    def answer(*reasons: str) -> ChatResponse:
        choices = [
            {"index": i, "message": {"role": "assistant", "content": "x"}, "finish_reason": r}
            for i, r in enumerate(reasons)
        ]
        return ChatResponse("r", "m", 0, choices, Usage(1, 1))

    assert complete(answer("stop")) and complete(answer("tool_calls")) and complete(answer("stop", "stop"))
    assert (
        not complete(answer("length"))
        and not complete(answer("content_filter"))
        and not complete(answer("stop", "length"))
    )
    assert not complete(ChatResponse("r", "m", 0, [], Usage()))


async def test_a_request_the_firewall_flags_for_personal_data_is_skipped(cache_gateway: Factory) -> None:
    gw = await cache_gateway(extra="guardrails: {default_level: standard}", stages="[firewall, response_cache]")
    text = "Write to jane.doe@example.com and call +1 415 555 0100 about card 4111 1111 1111 1111."
    for _ in range(2):
        answer = await gw.ask(content=text)
        assert answer.status_code == 200, answer.text
        assert (answer.headers[STATUS], answer.headers["x-sluice-cache-skip-reason"]) == ("skip", "pii")
    assert (await gw.ask(content="Nothing personal here.")).headers[STATUS] == "miss"


async def test_hits_count_against_requests_per_minute_only_when_configured(cache_gateway: Factory) -> None:
    free = await cache_gateway()
    counted = await cache_gateway("{store: memory, count_hits_in_rate_limits: true}")
    for gw in (free, counted):
        await gw.admin("POST", "/admin/tenants", {"id": "rl"})
        await gw.admin("POST", "/admin/teams", {"id": "rl-team", "tenant": "rl"})
        key = (await gw.admin("POST", "/admin/keys", {"team": "rl-team", "rpm": 2}))["key"]
        answers = [await gw.ask(key) for _ in range(3)]
        assert [a.headers.get(STATUS) for a in answers[:2]] == ["miss", "hit-exact"]
        if gw is free:
            assert answers[2].status_code == 200 and answers[2].headers[STATUS] == "hit-exact"
        else:  # the miss and the first hit took the key's two requests of this minute
            assert answers[2].status_code == 429 and answers[2].json()["error"]["code"] == "rate_limit_exceeded"
            assert "retry-after" in answers[2].headers
