"""Rate limits across two gateway processes sharing Redis: an RPM limit of N lets exactly N through in
any window, whichever instance each request reaches. The window is shortened (3 s) by configuration so
the test stays bounded in time; the arithmetic is the same for 60 s."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator

import httpx
import openai
import pytest
import redis

from tests.conftest import MASTER_KEY, Proc, start_gateway

WINDOW = 3.0
RPM = 5
PROMPT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}


@pytest.fixture(scope="module")
def pair(simulator: Proc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Proc, Proc]]:
    prefix = "sgtest-rl-" + secrets.token_hex(4)
    extra = f"""
redis:
  url: redis://127.0.0.1:6379/0
limits:
  key_prefix: {prefix}
  window_seconds: {WINDOW}
  global: {{rpm: {RPM}}}
"""
    first = start_gateway(simulator, tmp_path_factory.mktemp("rl-a"), "rl-a", extra)
    try:
        second = start_gateway(simulator, tmp_path_factory.mktemp("rl-b"), "rl-b", extra)
    except BaseException:
        first.stop()
        raise
    yield first, second
    first.stop()
    second.stop()
    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    for key in client.scan_iter(match=f"{prefix}:*"):
        client.delete(key)
    client.close()


def post(gw: Proc) -> tuple[float, httpx.Response]:
    sent = time.monotonic()
    response = httpx.post(
        f"{gw.url}/v1/chat/completions", json=PROMPT, headers={"authorization": f"Bearer {MASTER_KEY}"}, timeout=10
    )
    return sent, response


def test_rpm_holds_exactly_across_two_instances(pair: tuple[Proc, Proc]) -> None:
    for gw in pair:  # warm: a first request pays for lazy start-up work
        post(gw)
    time.sleep(WINDOW)  # a clean window
    burst = [post(pair[i % 2]) for i in range(16)]
    statuses = [r.status_code for _, r in burst]
    assert statuses.count(200) == RPM, statuses
    refused = [r for _, r in burst if r.status_code == 429]
    assert all(r.json()["error"]["code"] == "rate_limit_exceeded" for r in refused)
    assert all(1 <= int(r.headers["retry-after"]) <= WINDOW for r in refused)

    # a steady stream for two windows: never more than N in any window, and N again once one has passed
    admitted = [sent for sent, r in burst if r.status_code == 200]
    deadline = time.monotonic() + 2 * WINDOW
    i = 0
    while time.monotonic() < deadline:
        sent, response = post(pair[i % 2])
        i += 1
        assert response.status_code in (200, 429)
        if response.status_code == 200:
            admitted.append(sent)
        time.sleep(0.1)
    for j in range(len(admitted) - RPM):
        # N+1 consecutive admissions always span more than a window (less the requests' own latency)
        assert admitted[j + RPM] - admitted[j] > WINDOW - 0.5, admitted
    assert len(admitted) >= 2 * RPM


def test_openai_rate_limit_headers_and_sdk_error(pair: tuple[Proc, Proc]) -> None:
    time.sleep(WINDOW)
    client = openai.OpenAI(base_url=f"{pair[0].url}/v1", api_key=MASTER_KEY, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(**PROMPT)  # type: ignore[call-overload]
    assert raw.headers["x-ratelimit-limit-requests"] == str(RPM)
    assert raw.headers["x-ratelimit-remaining-requests"] == str(RPM - 1)
    assert raw.headers["x-ratelimit-reset-requests"].endswith("s")
    other = openai.OpenAI(base_url=f"{pair[1].url}/v1", api_key=MASTER_KEY, max_retries=0)
    for _ in range(RPM - 1):
        other.chat.completions.create(**PROMPT)  # type: ignore[call-overload]
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(**PROMPT)  # type: ignore[call-overload]
    assert caught.value.code == "rate_limit_exceeded"
    assert int(caught.value.response.headers["retry-after"]) >= 1
