"""The semantic layer through a whole gateway with the bundled local embedding model: a paraphrase is a hit,
a question that differs on a fact is a near-miss (a miss for the client), another system prompt never
matches, and two gateways share their questions through Redis."""

from __future__ import annotations

import asyncio
from importlib.util import find_spec

import pytest
import redis.asyncio as aioredis

from tests.cache.conftest import MASTER, REDIS_URL, CacheGateway, Factory

pytestmark = pytest.mark.skipif(find_spec("wordllama") is None, reason="needs the local-models extra")

STATUS = "x-sluice-cache"
HOST = "model_host: {keep_event_loop_off_model_cores: false, nice: 0, deadline_ms: 3000}"
SEMANTIC = "semantic: {enabled: true, threshold: 0.855, deadline_ms: 3000}"


async def ask(gw: CacheGateway, text: str, system: str | None = None) -> tuple[str, dict[str, str]]:
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text}]
    response = await gw.client.post(
        "/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": messages},
        headers={"authorization": f"Bearer {MASTER}"},
    )
    assert response.status_code == 200, response.text
    return response.headers[STATUS], dict(response.headers)


async def test_a_paraphrase_hits_and_a_question_with_other_facts_does_not(cache_gateway: Factory) -> None:
    gw = await cache_gateway(f"{{store: memory, {SEMANTIC}}}", extra=HOST)
    assert (await ask(gw, "What is the capital of France?"))[0] == "miss"
    status, headers = await ask(gw, "Which city is the capital of France?")
    assert status == "hit-semantic" and 0.855 <= float(headers["x-sluice-cache-similarity"]) <= 1.0
    assert (await ask(gw, "Convert 10 miles to kilometers."))[0] == "miss"
    # the same words the other way round: the embedding cannot tell, the facts can
    assert (await ask(gw, "Convert 10 kilometers to miles."))[0] == "miss"
    assert (await ask(gw, "How many kilometers is 10 miles?"))[0] == "hit-semantic"
    # the same question under another system prompt is another question
    assert (await ask(gw, "Which city is the capital of France?", system="Answer in French."))[0] == "miss"
    metrics = (await gw.client.get("/metrics")).text
    assert 'sluicegate_response_cache_lookups_total{group="gpt-4o-mini",result="hit-semantic"} 2.0' in metrics
    assert 'sluicegate_response_cache_lookups_total{group="gpt-4o-mini",result="near-miss"} 1.0' in metrics
    assert "sluicegate_response_cache_vectors" in metrics
    # answers dropped by an operator are not found by meaning either
    assert await gw.admin("POST", "/admin/response-cache/invalidate", {"group": "gpt-4o-mini"}) == {"dropped": 4}
    assert (await ask(gw, "Tell me the capital city of France."))[0] == "miss"
    await gw.gateway.stop()
    rows = [gw.ledger(f"{gw.gateway.request_id_prefix}{n:012x}") for n in (2,)]
    assert rows[0]["cache_status"] == "hit-semantic" and rows[0]["cost_micros"] == 0 and rows[0]["saved_micros"] > 0


async def test_two_gateways_share_their_questions_through_redis(cache_gateway: Factory, redis_prefix: str) -> None:
    settings = f"{{store: redis, redis_prefix: {redis_prefix}, {SEMANTIC}}}"
    try:
        one = await cache_gateway(settings, redis=True, extra=HOST)
        two = await cache_gateway(settings, redis=True, extra=HOST)
        assert (await ask(one, "How do I reset my password?"))[0] == "miss"
        for _ in range(50):  # the other gateway follows the shared questions within about half a second
            status, _ = await ask(two, "How can I reset my password?")
            if status == "hit-semantic":
                break
            await asyncio.sleep(0.1)
        assert status == "hit-semantic"
    finally:
        client = aioredis.from_url(REDIS_URL)
        async for key in client.scan_iter(match=f"{redis_prefix}:*", count=1000):
            await client.delete(key)
        await client.aclose()


async def test_the_semantic_layer_is_on_only_for_the_groups_that_ask_for_it(cache_gateway: Factory) -> None:
    settings = (
        "{store: memory, semantic: {threshold: 0.855, deadline_ms: 3000}, groups: {gpt-4o-mini: {semantic: true}}}"
    )
    gw = await cache_gateway(settings, extra=HOST)
    assert (await ask(gw, "What is the capital of France?"))[0] == "miss"
    assert (await ask(gw, "Which city is the capital of France?"))[0] == "hit-semantic"
    other = await gw.client.post(
        "/v1/chat/completions",
        json={"model": "faulty", "messages": [{"role": "user", "content": "What is the capital of France?"}]},
        headers={"authorization": f"Bearer {MASTER}"},
    )
    again = await gw.client.post(
        "/v1/chat/completions",
        json={"model": "faulty", "messages": [{"role": "user", "content": "Which city is the capital of France?"}]},
        headers={"authorization": f"Bearer {MASTER}"},
    )
    assert (other.headers["x-sluice-cache"], again.headers["x-sluice-cache"]) == ("miss", "miss")
