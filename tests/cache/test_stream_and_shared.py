"""Streamed answers (replayed and kept) through the openai and anthropic SDKs, the Redis store shared by
two gateways, namespace isolation on Redis, and answers left behind when a group's deployments change."""

from __future__ import annotations

import anthropic
import httpx2
import openai
import pytest
import redis.asyncio as aioredis

from tests.cache.conftest import MASTER, REDIS_URL, CacheGateway, Factory

STATUS = "x-sluice-cache"
ASK = [{"role": "user", "content": "Name three rivers in Europe."}]


def sdk(gw: CacheGateway, key: str = MASTER) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url="http://gw/v1", api_key=key, http_client=gw.client, max_retries=0)


async def test_a_whole_answer_is_replayed_as_an_openai_stream_with_usage(cache_gateway: Factory) -> None:
    gw = await cache_gateway()
    client = sdk(gw)
    first = await client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=ASK)  # type: ignore[arg-type]
    assert first.headers[STATUS] == "miss"
    whole = first.parse()
    raw = await client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=ASK,
        stream=True,
        stream_options={"include_usage": True},  # type: ignore[arg-type]
    )
    assert raw.headers[STATUS] == "hit-exact"
    chunks = [chunk async for chunk in raw.parse()]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens  # type: ignore[union-attr]


async def test_a_streamed_answer_is_kept_once_complete_and_replayed_through_the_anthropic_sdk(
    cache_gateway: Factory,
) -> None:
    gw = await cache_gateway()
    transport = httpx2.ASGITransport(app=gw.client._transport.app)  # type: ignore[attr-defined]
    http = httpx2.AsyncClient(transport=transport, base_url="http://gw")
    client = anthropic.AsyncAnthropic(base_url="http://gw", api_key=MASTER, http_client=http, max_retries=0)
    question = [{"role": "user", "content": "Describe a lighthouse."}]
    async with client.messages.stream(model="gpt-4o-mini", max_tokens=200, messages=question) as stream:  # type: ignore[arg-type]
        first = await stream.get_final_message()
    async with client.messages.stream(model="gpt-4o-mini", max_tokens=200, messages=question) as stream:  # type: ignore[arg-type]
        assert stream.response.headers[STATUS] == "hit-exact"
        replayed = await stream.get_final_message()
        text = "".join([piece async for piece in stream.text_stream])
    assert replayed.content[0].text == first.content[0].text  # type: ignore[union-attr]
    assert replayed.stop_reason == "end_turn" and text == ""  # the text events were all read by get_final_message
    whole = await client.messages.with_raw_response.create(model="gpt-4o-mini", max_tokens=200, messages=question)  # type: ignore[arg-type]
    assert whole.headers[STATUS] == "hit-exact"
    assert (await whole.parse()).content[0].text == first.content[0].text  # type: ignore[union-attr]
    await http.aclose()


async def test_openai_stream_kept_and_hit_by_a_whole_ask(cache_gateway: Factory) -> None:
    gw = await cache_gateway()
    client = sdk(gw)
    stream = await client.chat.completions.create(model="gpt-4o-mini", messages=ASK, stream=True)  # type: ignore[arg-type]
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    raw = await client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=ASK)  # type: ignore[arg-type]
    assert raw.headers[STATUS] == "hit-exact" and raw.parse().choices[0].message.content == text


async def _drop(prefix: str) -> None:
    client = aioredis.from_url(REDIS_URL)
    async for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        await client.delete(key)
    await client.aclose()


async def test_two_gateways_share_the_redis_store_and_tenants_stay_apart(
    cache_gateway: Factory, redis_prefix: str
) -> None:
    settings = f"{{store: redis, redis_prefix: {redis_prefix}}}"
    try:
        one = await cache_gateway(settings, redis=True)
        two = await cache_gateway(settings, redis=True)
        keys = {}
        for gw in (one, two):  # each gateway has its own database: the same tenant ids in both
            keys[gw] = (await gw.key("ra"), await gw.key("rb"))
        assert (await one.ask(keys[one][0])).headers[STATUS] == "miss"
        hit = await two.ask(keys[two][0])
        assert hit.headers[STATUS] == "hit-exact"
        assert (await two.ask(keys[two][1])).headers[STATUS] == "miss"  # tenant rb: never ra's answer
        assert (await one.ask(keys[one][1])).headers[STATUS] == "hit-exact"  # rb's own, kept by the other gateway
        assert await two.admin("POST", "/admin/response-cache/invalidate", {"namespace": "tenant:ra"}) == {"dropped": 1}
        assert (await one.ask(keys[one][0])).headers[STATUS] == "miss"
        # a change of the group's deployments (another model version) leaves the old answers unreachable
        changed = await cache_gateway(settings, models="gpt-4o-mini-2024-07-18", redis=True)
        assert (await changed.ask(await changed.key("rb"))).headers[STATUS] == "miss"
    finally:
        await _drop(redis_prefix)


async def test_a_redis_that_is_away_is_a_miss_not_an_error(cache_gateway: Factory, redis_prefix: str) -> None:
    gw = await cache_gateway(f"{{store: redis, redis_prefix: {redis_prefix}, redis_timeout_ms: 200}}", redis=True)
    stage = next(s for s in gw.gateway.pipeline.stages if getattr(s, "name", "") == "response_cache")
    stage.store.client = aioredis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.1)  # type: ignore[attr-defined]
    for _ in range(2):
        answer = await gw.ask()
        assert answer.status_code == 200 and answer.headers[STATUS] == "miss"


@pytest.mark.parametrize("categories", [("pii_email",), ("pii_card", "secret_aws_key")])
async def test_a_request_the_firewall_flagged_for_pii_is_skipped(categories: tuple[str, ...]) -> None:
    from sluicegate.canonical import ChatRequest
    from sluicegate.catalog import ModelCatalog
    from sluicegate.config.schema import GatewayConfig
    from sluicegate.events import EventBus
    from sluicegate.pipeline.context import RequestContext
    from sluicegate.pipeline.stages import StageServices
    from sluicegate.pipeline.stages.response_cache import create

    config = GatewayConfig.model_validate(
        {
            "providers": {"p": {"kind": "openai", "base_url": "http://127.0.0.1:9"}},
            "models": [{"name": "m", "deployments": [{"provider": "p", "model": "m"}]}],
            "pipeline": {"stages": ["response_cache"]},
        }
    )
    catalog = ModelCatalog.from_config(config, {})
    stage = create(StageServices(config, EventBus(), catalog=catalog))
    ctx = RequestContext("r", "chat", "openai", {}, ChatRequest("m", [{"role": "user", "content": "mail a@b.c"}]))
    ctx.group = catalog.get("m")
    ctx.guardrail_categories = categories
    assert await stage.on_request(ctx) is None
    assert ctx.response_headers["x-sluice-cache"] == "skip" and ctx.response_cache is None
    assert ctx.response_headers["x-sluice-cache-skip-reason"] == "pii"
