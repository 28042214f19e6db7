"""The /_sim control endpoints: fault rules per model and request statistics."""

from __future__ import annotations

from typing import Any

import openai

from .conftest import RunningSimulator

MESSAGES: list[Any] = [{"role": "user", "content": "Hi."}]


async def test_fault_rules_can_be_listed_replaced_and_cleared(sim: RunningSimulator) -> None:
    status, listing = await sim.control("GET", "/_sim/faults")
    assert status == 200 and listing == {"models": {}, "default": []}

    rules = [{"type": "rate_limit", "probability": 0.25, "retry_after": 2}, {"type": "slow", "factor": 3}]
    status, reply = await sim.control("PUT", "/_sim/faults/gpt-4o", {"faults": rules})
    assert status == 200 and reply["model"] == "gpt-4o"
    assert [(r["type"], r["source"], r["active"]) for r in reply["faults"]] == [
        ("rate_limit", "injected", True),
        ("slow", "injected", True),
    ]
    _, listing = await sim.control("GET", "/_sim/faults")
    assert listing["models"]["gpt-4o"][0]["probability"] == 0.25

    status, listing = await sim.control("DELETE", "/_sim/faults")
    assert status == 200 and listing["models"] == {}


async def test_model_names_with_slashes_are_addressable(sim: RunningSimulator) -> None:
    await sim.control("PUT", "/_sim/faults/openai/gpt-4o", {"faults": [{"type": "server_error"}]})
    client = sim.client()
    try:
        await client.chat.completions.create(model="openai/gpt-4o", messages=MESSAGES)
        raise AssertionError("expected a server error")
    except openai.InternalServerError:
        pass


async def test_invalid_rules_are_refused_with_the_reason(sim: RunningSimulator) -> None:
    bodies: list[Any] = [
        {"faults": [{"type": "meteor_strike"}]},
        {"faults": [{"type": "rate_limit", "probability": 2}]},
        {"faults": [{"type": "slow"}]},  # a slowdown needs its factor
        {"faults": [{"type": "server_error", "after_tokens": 3}]},  # only mid-stream faults take it
        {"rules": []},
    ]
    for body in bodies:
        status, reply = await sim.control("PUT", "/_sim/faults/m", body)
        assert status == 400, body
        assert reply["error"]["type"] == "invalid_request_error"
        assert reply["error"]["message"].startswith("Invalid fault rules")
    _, listing = await sim.control("GET", "/_sim/faults")
    assert "m" not in listing["models"]


async def test_stats_count_requests_and_keep_the_last_body(sim: RunningSimulator) -> None:
    client = sim.client()
    await client.chat.completions.create(model="m", messages=MESSAGES)
    await client.chat.completions.create(
        model="m", messages=MESSAGES, temperature=0.3, seed=99, extra_body={"custom_field": [1, 2]}
    )
    await client.embeddings.create(model="e", input=["a", "b"])

    status, stats = await sim.control("GET", "/_sim/stats")
    assert status == 200
    chat = stats["models"]["m"]
    assert chat["requests"] == 2 and chat["in_flight"] == 0
    assert chat["last_request"]["temperature"] == 0.3 and chat["last_request"]["seed"] == 99
    assert chat["last_request"]["custom_field"] == [1, 2]
    assert stats["models"]["e"]["last_request"]["input"] == ["a", "b"]

    status, stats = await sim.control("DELETE", "/_sim/stats")
    assert status == 200 and stats == {"models": {}}


async def test_unknown_control_paths_are_404(sim: RunningSimulator) -> None:
    status, reply = await sim.control("GET", "/_sim/nothing")
    assert status == 404 and reply["error"]["message"] == "Invalid URL (GET /_sim/nothing)"
    status, _ = await sim.control("POST", "/_sim/faults")
    assert status == 404
