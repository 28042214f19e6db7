"""Fault injection seen from the official openai SDK: errors, outages, broken streams, hangs, disconnects."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import openai
import pytest

from sluicegate.providers.simulator import FaultRule, ModelBehaviour, SimulatorConfig
from sluicegate.providers.simulator.config import Fixed

from .conftest import FakeClock, RunningSimulator, StartSimulator

MESSAGES: list[Any] = [{"role": "user", "content": "Hello there."}]


def faulty(*rules: dict[str, Any], **behaviour: Any) -> SimulatorConfig:
    model = ModelBehaviour(faults=[FaultRule.model_validate(rule) for rule in rules], **behaviour)
    return SimulatorConfig(seed=5, models={"faulty": model})


async def test_rate_limit_is_429_with_retry_after(start_simulator: StartSimulator) -> None:
    sim = await start_simulator(faulty({"type": "rate_limit", "retry_after": 7}))
    with pytest.raises(openai.RateLimitError) as info:
        await sim.client().chat.completions.create(model="faulty", messages=MESSAGES)
    assert info.value.status_code == 429
    assert info.value.response.headers["retry-after"] == "7"
    assert info.value.code == "rate_limit_exceeded"
    # Models without rules are untouched.
    assert (await sim.client().chat.completions.create(model="healthy", messages=MESSAGES)).choices


@pytest.mark.parametrize(
    ("fault", "status", "error"),
    [("server_error", 500, openai.InternalServerError), ("unavailable", 503, openai.InternalServerError)],
)
async def test_server_errors(
    start_simulator: StartSimulator, fault: str, status: int, error: type[openai.APIStatusError]
) -> None:
    sim = await start_simulator(faulty({"type": fault}))
    with pytest.raises(error) as info:
        await sim.client().chat.completions.create(model="faulty", messages=MESSAGES, stream=True)
    assert info.value.status_code == status
    assert info.value.body["type"] == "server_error"  # type: ignore[index]


async def test_outage_window_ends_by_itself(start_simulator: StartSimulator) -> None:
    clock = FakeClock()
    sim = await start_simulator(SimulatorConfig(seed=1), clock=clock)
    client = sim.client()
    await sim.control("PUT", "/_sim/faults/m", {"faults": [{"type": "outage", "duration_s": 30}]})
    for _ in range(3):
        with pytest.raises(openai.InternalServerError) as info:
            await client.chat.completions.create(model="m", messages=MESSAGES)
        assert info.value.status_code == 503
    clock.now += 29.9
    with pytest.raises(openai.InternalServerError):
        await client.chat.completions.create(model="m", messages=MESSAGES)
    clock.now += 0.2
    assert (await client.chat.completions.create(model="m", messages=MESSAGES)).choices
    _, listing = await sim.control("GET", "/_sim/faults")
    assert listing["models"]["m"][0]["active"] is False


async def test_probability_draws_are_reproducible_with_a_seed(start_simulator: StartSimulator) -> None:
    async def outcomes() -> list[bool]:
        sim = await start_simulator(faulty({"type": "server_error", "probability": 0.5}))
        client = sim.client()
        results = []
        for _ in range(24):
            try:
                await client.chat.completions.create(model="faulty", messages=MESSAGES)
                results.append(True)
            except openai.InternalServerError:
                results.append(False)
        return results

    first = await outcomes()
    assert 0 < sum(first) < len(first)
    assert await outcomes() == first


async def test_malformed_sse_breaks_the_stream_after_some_tokens(start_simulator: StartSimulator) -> None:
    sim = await start_simulator(faulty({"type": "malformed_sse", "after_tokens": 2}))
    stream = await sim.client().chat.completions.create(model="faulty", messages=MESSAGES, stream=True)
    received = []
    with pytest.raises(ValueError):  # the SDK's JSON decoding of the bad data line
        async for chunk in stream:
            received.append(chunk)
    assert [bool(c.choices[0].delta.content) for c in received] == [False, True, True]


async def test_reset_mid_stream_is_a_broken_connection(start_simulator: StartSimulator) -> None:
    sim = await start_simulator(faulty({"type": "reset", "after_tokens": 3}))
    stream = await sim.client().chat.completions.create(model="faulty", messages=MESSAGES, stream=True)
    received = []
    with pytest.raises(openai.APIConnectionError) as info:
        async for chunk in stream:
            received.append(chunk)
    assert not isinstance(info.value, openai.APITimeoutError)  # dropped at once, not stalled
    assert len(received) == 4  # the role chunk and three tokens, then nothing


async def test_reset_before_the_body_of_a_whole_response(start_simulator: StartSimulator) -> None:
    sim = await start_simulator(faulty({"type": "reset"}))
    with pytest.raises(openai.APIConnectionError):
        await sim.client().chat.completions.create(model="faulty", messages=MESSAGES)
    async with aiohttp.ClientSession() as session:
        body = {"model": "faulty", "messages": MESSAGES}
        async with session.post(sim.url + "/v1/chat/completions", json=body) as response:
            assert response.status == 200
            with pytest.raises(aiohttp.ClientPayloadError):
                await response.read()


async def test_hang_lasts_until_the_client_gives_up(start_simulator: StartSimulator) -> None:
    sim = await start_simulator(faulty({"type": "hang"}))
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        await sim.client(timeout=0.3).chat.completions.create(model="faulty", messages=MESSAGES)
    assert 0.3 <= time.monotonic() - started < 2
    await sim.wait_for_stat("faulty", "requests_cancelled", 1)
    assert (await sim.stats("faulty"))["in_flight"] == 0


async def test_hang_mid_stream_stalls_after_some_tokens(start_simulator: StartSimulator) -> None:
    sim = await start_simulator(faulty({"type": "hang", "after_tokens": 2}))
    stream = await sim.client(timeout=0.3).chat.completions.create(model="faulty", messages=MESSAGES, stream=True)
    received = []
    with pytest.raises(openai.APITimeoutError):
        async for chunk in stream:
            received.append(chunk)
    assert len(received) == 3
    await sim.wait_for_stat("faulty", "streams_cancelled", 1)


async def test_client_disconnect_stops_the_stream_and_counts_as_cancelled(
    start_simulator: StartSimulator,
) -> None:
    config = faulty(tokens_per_second=50, output_tokens=500)  # ten seconds if nobody stopped it
    sim = await start_simulator(config)
    stream = await sim.client().chat.completions.create(model="faulty", messages=MESSAGES, stream=True)
    chunks = 0
    async for _ in stream:
        chunks += 1
        if chunks == 3:
            break
    assert (await sim.stats("faulty"))["in_flight"] == 1
    await stream.close()
    await sim.wait_for_stat("faulty", "streams_cancelled", 1, timeout=1.0)
    stats = await sim.stats("faulty")
    assert stats["in_flight"] == 0 and stats["streams_completed"] == 0


async def test_completed_streams_are_counted(sim: RunningSimulator) -> None:
    for _ in range(2):
        stream = await sim.client().chat.completions.create(model="m", messages=MESSAGES, stream=True)
        [chunk async for chunk in stream]
    stats = await sim.stats("m")
    assert stats["streams_completed"] == 2 and stats["streams_cancelled"] == 0 and stats["requests"] == 2


async def test_slow_multiplies_latency_and_pacing_follows_tokens_per_second(
    start_simulator: StartSimulator,
) -> None:
    config = SimulatorConfig(
        models={"m": ModelBehaviour(ttft_ms=Fixed(value=40), tokens_per_second=100, output_tokens=10)}
    )
    sim = await start_simulator(config)
    client = sim.client()

    async def timed_stream() -> tuple[float, float]:
        started = time.monotonic()
        stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        first = None
        async for chunk in stream:
            if first is None and chunk.choices and chunk.choices[0].delta.content:
                first = time.monotonic() - started
        assert first is not None
        return first, time.monotonic() - started

    first, total = await timed_stream()
    assert first >= 0.04 and total >= 0.04 + 9 * 0.01
    await sim.control("PUT", "/_sim/faults/m", {"faults": [{"type": "slow", "factor": 5}]})
    slow_first, slow_total = await timed_stream()
    assert slow_first >= 0.2 and slow_total >= 0.2 + 9 * 0.05
    assert (await sim.stats("m"))["faults"] == {"slow": 1}


async def test_injected_rules_replace_configured_ones_until_cleared(start_simulator: StartSimulator) -> None:
    sim = await start_simulator(faulty({"type": "server_error"}))
    client = sim.client()
    await sim.control("PUT", "/_sim/faults/faulty", {"faults": []})
    assert (await client.chat.completions.create(model="faulty", messages=MESSAGES)).choices
    await sim.control("DELETE", "/_sim/faults")
    with pytest.raises(openai.InternalServerError):
        await client.chat.completions.create(model="faulty", messages=MESSAGES)


async def test_wildcard_rules_apply_to_every_model(sim: RunningSimulator) -> None:
    status, reply = await sim.control("PUT", "/_sim/faults/*", {"faults": [{"type": "rate_limit"}]})
    assert status == 200 and reply["faults"][0]["type"] == "rate_limit"
    for model in ("a", "b"):
        with pytest.raises(openai.RateLimitError):
            await sim.client().chat.completions.create(model=model, messages=MESSAGES)
    with pytest.raises(openai.RateLimitError):
        await sim.client().embeddings.create(model="e", input="x")
    await sim.control("DELETE", "/_sim/faults")
    assert (await sim.client().chat.completions.create(model="a", messages=MESSAGES)).choices


async def test_many_concurrent_hangs_all_end_when_clients_leave(start_simulator: StartSimulator) -> None:
    sim = await start_simulator(faulty({"type": "hang"}))
    client = sim.client(timeout=0.2)
    results = await asyncio.gather(
        *(client.chat.completions.create(model="faulty", messages=MESSAGES) for _ in range(20)),
        return_exceptions=True,
    )
    assert all(isinstance(result, openai.APITimeoutError) for result in results)
    await sim.wait_for_stat("faulty", "in_flight", 0)
    assert (await sim.stats("faulty"))["requests_cancelled"] == 20
