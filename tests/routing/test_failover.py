"""Failover as a client sees it: a real gateway in front of the simulator with faults injected per model."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import MASTER_KEY, Proc, start_gateway

MESSAGES = [{"role": "user", "content": "Name three rivers in Europe."}]


def pair(name: str, extra: str = "", b_extra: str = "") -> str:
    """A group of two deployments where `a` (cheaper) is always tried first and `b` is the fallback."""
    return f"""
  - name: {name}
    routing: {{strategy: cost{extra}}}
    deployments:
      - {{provider: sim, model: {name}-a, price: {{input: 1, output: 1}}, timeouts: {{first_byte: 1, total: 3}}}}
      - {{provider: sim, model: {name}-b, price: {{input: 2, output: 2}}{b_extra}}}
"""


GROUPS = (
    pair("rt-outage", ", breaker: {consecutive_failures: 3, min_open_s: 30}")
    + pair("rt-stream")
    + pair("rt-midstream")
    + pair("rt-down", ", breaker: {consecutive_failures: 100, minimum_calls: 100}")
    + pair("rt-hedge", ", hedging: {enabled: true, delay_ms: 150}")
    + pair("rt-admin")
    + pair("rt-timeout")
    + """
  - name: rt-single
    deployments:
      - {provider: sim, model: rt-single-a}
  - name: rt-short
    routing: {fallbacks_by_error: {context_window: [rt-long]}}
    deployments:
      - {provider: sim, model: rt-short-a, context_window: 40}
  - name: rt-long
    deployments:
      - {provider: sim, model: rt-long-a, context_window: 100000}
"""
)


@pytest.fixture(scope="module")
def gateway(simulator: Proc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    proc = start_gateway(simulator, tmp_path_factory.mktemp("routing"), "routing-gateway", GROUPS)
    yield proc
    proc.stop()


@pytest.fixture
def client(gateway: Proc) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=MASTER_KEY, max_retries=0, timeout=20)


def access_entry(gateway: Proc, request_id: str, timeout: float = 5.0) -> dict[str, object]:
    log = Path(str(gateway.stdout).replace(".out", "-access.log"))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists():
            for line in log.read_text().splitlines():
                entry = json.loads(line)
                if entry["request_id"] == request_id:
                    return entry  # type: ignore[no-any-return]
        time.sleep(0.05)
    raise AssertionError(f"no access log line for {request_id}")


def test_outage_fails_over_invisibly_then_the_breaker_opens(
    client: openai.OpenAI, gateway: Proc, sim_control: httpx.Client
) -> None:
    sim_control.put("/_sim/faults/rt-outage-a", json={"faults": [{"type": "outage"}]})
    attempts = []
    for _ in range(10):
        raw = client.chat.completions.with_raw_response.create(model="rt-outage", messages=MESSAGES)
        assert raw.parse().choices[0].message.content
        assert raw.headers["x-sluice-deployment"] == "sim/rt-outage-b"
        attempts.append(int(raw.headers["x-sluice-attempts"]))
    assert attempts[:3] == [2, 2, 2], "the first failures are retried on the other deployment"
    assert attempts[3:] == [1] * 7, "after 3 consecutive failures the breaker keeps traffic off it"
    assert "breaker-open" in raw.headers["x-sluice-route-reason"]
    ready = httpx.get(f"{gateway.url}/health/ready").json()
    assert ready["breakers"]["sim/rt-outage-a"] == "open"
    assert ready["breakers"]["sim/rt-outage-b"] == "closed"
    entry = access_entry(gateway, raw.headers["x-sluice-request-id"])
    assert entry["deployment"] == "sim/rt-outage-b" and entry["attempts"] == 1
    assert entry["route_reason"] == raw.headers["x-sluice-route-reason"]


@pytest.mark.parametrize(
    "fault",
    [
        {"type": "server_error"},
        {"type": "malformed_sse", "after_tokens": 0},
        {"type": "reset", "after_tokens": 0},
        {"type": "rate_limit", "retry_after": 30},  # last: it keeps rt-stream-a out of rotation for 30 s
    ],
)
def test_stream_failing_before_its_first_token_fails_over_invisibly(
    client: openai.OpenAI, gateway: Proc, sim_control: httpx.Client, fault: dict[str, object]
) -> None:
    sim_control.put("/_sim/faults/rt-stream-a", json={"faults": [fault]})
    raw = client.chat.completions.with_raw_response.create(model="rt-stream", messages=MESSAGES, stream=True)
    chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert raw.headers["x-sluice-deployment"] == "sim/rt-stream-b"
    assert raw.headers["x-sluice-attempts"] == "2"
    entry = access_entry(gateway, raw.headers["x-sluice-request-id"])
    log = entry["attempt_log"]
    assert isinstance(log, list) and log[-1] == "sim/rt-stream-b:ok" and log[0].startswith("sim/rt-stream-a:")


def test_stream_failing_after_bytes_were_sent_ends_with_an_error_event(
    client: openai.OpenAI, sim_control: httpx.Client
) -> None:
    sim_control.put("/_sim/faults/rt-midstream-a", json={"faults": [{"type": "reset", "after_tokens": 3}]})
    received = []
    with pytest.raises(openai.APIError) as info:
        for chunk in client.chat.completions.create(model="rt-midstream", messages=MESSAGES, stream=True):
            received.append(chunk)
    assert received, "the tokens before the failure reached the client"
    assert "closed the connection" in str(info.value)


def test_all_deployments_down_is_a_clean_fast_error(client: openai.OpenAI, sim_control: httpx.Client) -> None:
    for model in ("rt-down-a", "rt-down-b"):
        sim_control.put(f"/_sim/faults/{model}", json={"faults": [{"type": "outage"}]})
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="rt-down", messages=MESSAGES)
    assert time.monotonic() - started < 5
    assert info.value.status_code == 503
    assert info.value.code == "overloaded"
    headers = info.value.response.headers
    assert headers["x-sluice-request-id"]
    assert headers["x-sluice-attempts"] == "3", "a, b, then b once more (nothing else left): the attempt cap"
    assert headers["x-sluice-deployment"] == "sim/rt-down-b"
    assert headers["x-sluice-route-reason"].startswith("cost: cheapest of 2")


def test_retry_on_the_only_deployment_waits_out_a_short_retry_after(
    client: openai.OpenAI, sim_control: httpx.Client
) -> None:
    rule = {"type": "rate_limit", "retry_after": 1, "duration_s": 0.5}
    sim_control.put("/_sim/faults/rt-single-a", json={"faults": [rule]})
    started = time.monotonic()
    raw = client.chat.completions.with_raw_response.create(model="rt-single", messages=MESSAGES)
    assert raw.parse().choices[0].message.content
    assert raw.headers["x-sluice-attempts"] == "2"
    assert time.monotonic() - started >= 1.0, "waited the upstream's Retry-After before retrying"


def test_hedged_request_wins_on_the_second_deployment_and_records_the_loser(
    client: openai.OpenAI, gateway: Proc, sim_control: httpx.Client
) -> None:
    for _ in range(6):  # give the first deployment latency samples
        client.chat.completions.create(model="rt-hedge", messages=MESSAGES)
    sim_control.put("/_sim/faults/rt-hedge-a", json={"faults": [{"type": "hang"}]})
    started = time.monotonic()
    raw = client.chat.completions.with_raw_response.create(model="rt-hedge", messages=MESSAGES)
    assert time.monotonic() - started < 0.9, "answered long before the first deployment's 1 s timeout"
    completion = raw.parse()
    assert raw.headers["x-sluice-deployment"] == "sim/rt-hedge-b"
    assert raw.headers["x-sluice-attempts"] == "2"
    assert "hedged to sim/rt-hedge-b" in raw.headers["x-sluice-route-reason"]
    entry = access_entry(gateway, raw.headers["x-sluice-request-id"])
    assert entry["side_attempts"] == [
        {
            "deployment": "sim/rt-hedge-a",
            "input_tokens": completion.usage.prompt_tokens,  # type: ignore[union-attr]
            "output_tokens": 0,
            "estimated": True,
        }
    ]
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        if sim_control.get("/_sim/stats").json()["models"]["rt-hedge-a"]["in_flight"] == 0:
            break
        time.sleep(0.05)
    assert sim_control.get("/_sim/stats").json()["models"]["rt-hedge-a"]["in_flight"] == 0, "the loser was cancelled"


def test_timeout_on_one_deployment_fails_over_without_waiting_twice(
    client: openai.OpenAI, sim_control: httpx.Client
) -> None:
    sim_control.put("/_sim/faults/rt-timeout-a", json={"faults": [{"type": "hang"}]})
    started = time.monotonic()
    raw = client.chat.completions.with_raw_response.create(model="rt-timeout", messages=MESSAGES)
    assert raw.headers["x-sluice-deployment"] == "sim/rt-timeout-b"
    assert 0.9 < time.monotonic() - started < 2.5, "the deployment's own 1 s first-byte timeout applied once"


def test_prompt_too_long_for_the_group_goes_to_its_context_window_fallback(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="rt-short", messages=[{"role": "user", "content": "rivers " * 100}]
    )
    assert raw.headers["x-sluice-deployment"] == "sim/rt-long-a"
    assert raw.headers["x-sluice-route-reason"].startswith("context:")
    small = client.chat.completions.with_raw_response.create(model="rt-short", messages=MESSAGES)
    assert small.headers["x-sluice-deployment"] == "sim/rt-short-a"


def test_admin_can_force_a_breaker_open_and_give_it_back(client: openai.OpenAI, gateway: Proc) -> None:
    admin = httpx.Client(base_url=gateway.url, headers={"authorization": f"Bearer {MASTER_KEY}"}, timeout=5)
    denied = httpx.put(f"{gateway.url}/admin/routing/breakers", json={"deployment": "sim/rt-admin-a", "state": "open"})
    assert denied.status_code == 401
    forced = admin.put("/admin/routing/breakers", json={"deployment": "sim/rt-admin-a", "state": "open"})
    assert forced.json() == {"deployment": "sim/rt-admin-a", "state": "open", "forced": True}
    raw = client.chat.completions.with_raw_response.create(model="rt-admin", messages=MESSAGES)
    assert raw.headers["x-sluice-deployment"] == "sim/rt-admin-b"
    admin.put("/admin/routing/breakers", json={"deployment": "sim/rt-admin-a", "state": "auto"})
    raw = client.chat.completions.with_raw_response.create(model="rt-admin", messages=MESSAGES)
    assert raw.headers["x-sluice-deployment"] == "sim/rt-admin-a"
    report = {d["deployment"]: d for d in admin.get("/admin/routing/deployments").json()["deployments"]}
    assert report["sim/rt-admin-a"]["breaker"]["state"] == "closed"
    assert report["sim/rt-admin-a"]["latency"]["total_ms"]["count"] >= 1
    bad = admin.put("/admin/routing/breakers", json={"deployment": "nope", "state": "open"})
    assert bad.status_code == 404


def test_hedged_stream_switches_when_the_first_token_is_late(
    client: openai.OpenAI, gateway: Proc, sim_control: httpx.Client
) -> None:
    for _ in range(6):
        list(client.chat.completions.create(model="rt-hedge", messages=MESSAGES, stream=True))
    sim_control.put("/_sim/faults/rt-hedge-a", json={"faults": [{"type": "hang"}]})
    started = time.monotonic()
    raw = client.chat.completions.with_raw_response.create(model="rt-hedge", messages=MESSAGES, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    assert text.strip()
    assert time.monotonic() - started < 0.9
    assert raw.headers["x-sluice-deployment"] == "sim/rt-hedge-b"
    entry = access_entry(gateway, raw.headers["x-sluice-request-id"])
    assert entry["side_attempts"][0]["deployment"] == "sim/rt-hedge-a"  # type: ignore[index]
    assert entry["side_attempts"][0]["estimated"] is True  # type: ignore[index]
