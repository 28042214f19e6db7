"""Streams open when the gateway stops: SIGTERM ends them at the grace period's end with an error event in
each client's format, recorded and settled; after SIGKILL, a restart leaves a row for every stream whose
head reached a client. Real gateway processes, slow streams from a simulator of their own."""

from __future__ import annotations

import asyncio
import secrets
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import orjson
import pytest

from tests.conftest import MASTER_KEY, UPSTREAM_KEY, Proc, start_gateway
from tests.e2e.budgeted import own_simulator

CRAWL_SIMULATOR = f"""
seed: 11
api_key: {UPSTREAM_KEY}
default:
  ttft_ms: 0
  latency_ms: 0
  tokens_per_second: 0
models:
  crawl-model:
    ttft_ms: 20
    tokens_per_second: 8
    output_tokens: 400
  sleepy-model:
    ttft_ms: 60000
    latency_ms: 60000
"""
AUTH = {"authorization": f"Bearer {MASTER_KEY}"}


@pytest.fixture(scope="module")
def crawl_simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    proc = own_simulator(tmp_path_factory.mktemp("crawl-simulator"), CRAWL_SIMULATOR)
    yield proc
    proc.stop()


def _extra(prefix: str) -> str:
    return f"""
  - name: crawl
    deployments:
      - provider: sim
        model: crawl-model
        price: {{input: 1, output: 4}}
  - name: sleepy
    deployments:
      - provider: sim
        model: sleepy-model
        price: {{input: 1, output: 4}}
redis:
  url: redis://127.0.0.1:6379/0
limits:
  key_prefix: {prefix}
budgets:
  global: {{amount_usd: 100, period: total}}
"""


def _gateway(simulator: Proc, workdir: Path, name: str, graceful: float, prefix: str) -> Proc:
    return start_gateway(simulator, workdir, name, _extra(prefix), graceful_seconds=graceful)


class Streamer(threading.Thread):
    """Reads one SSE stream from the gateway and keeps every line; `chunks` counts data events received."""

    def __init__(self, url: str, path: str, body: dict[str, Any]) -> None:
        super().__init__(daemon=True)
        self.url, self.path, self.body = url, path, body
        self.lines: list[str] = []
        self.chunks = 0
        self.request_id: str | None = None
        self.status: int | None = None
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            with (
                httpx.Client(base_url=self.url, headers=AUTH, timeout=60) as client,
                client.stream("POST", self.path, json=self.body) as response,
            ):
                self.request_id = response.headers["x-sluice-request-id"]
                self.status = response.status_code
                for line in response.iter_lines():
                    self.lines.append(line)
                    if line.startswith("data: {"):
                        self.chunks += 1
        except BaseException as exc:  # the test looks at what arrived
            self.failure = exc


def _openai(url: str, model: str = "crawl", stream: bool = True) -> Streamer:
    body = {"model": model, "messages": [{"role": "user", "content": "tell me a long story"}], "stream": stream}
    return Streamer(url, "/v1/chat/completions", body)


def _anthropic(url: str, model: str = "crawl") -> Streamer:
    body = {
        "model": model,
        "max_tokens": 1000,
        "messages": [{"role": "user", "content": "tell me a long story"}],
        "stream": True,
    }
    return Streamer(url, "/v1/messages", body)


def _rows(workdir: Path) -> dict[str, dict[str, Any]]:
    with sqlite3.connect(workdir / ".sluicegate" / "sluicegate.db") as conn:
        conn.row_factory = sqlite3.Row
        return {row["request_id"]: dict(row) for row in conn.execute("SELECT * FROM spend_ledger")}


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _global_budget(prefix: str) -> tuple[int, int]:
    from sluicegate.state.model import BudgetScope
    from sluicegate.state.periods import period_bounds
    from sluicegate.state.redis import RedisState

    async def read() -> tuple[int, int]:
        state = RedisState.from_url("redis://127.0.0.1:6379/0", prefix=prefix)
        try:
            period, _ = period_bounds("total", time.time(), ZoneInfo("UTC"))
            status = await state.budget_status("", BudgetScope("global", period, 100_000_000, 100_000_000))
            return status.spent_micros, status.reserved_micros
        finally:
            await state.close()

    return asyncio.run(read())


def _waiting_upstream(simulator: Proc) -> int:
    models = httpx.get(f"{simulator.url}/_sim/stats", timeout=5).json()["models"]
    return int(models.get("sleepy-model", {}).get("in_flight", 0))


def test_sigterm_ends_open_streams_with_an_error_event_and_records_and_settles_them(
    crawl_simulator: Proc, tmp_path: Path
) -> None:
    prefix = "sgtest-term-" + secrets.token_hex(4)
    gateway = _gateway(crawl_simulator, tmp_path, "term", 2, prefix)
    streams = [_openai(gateway.url) for _ in range(3)] + [_anthropic(gateway.url) for _ in range(3)]
    # still waiting for their first token (or a whole answer) when the grace period ends
    waiting = [_openai(gateway.url, "sleepy"), _anthropic(gateway.url, "sleepy"), _openai(gateway.url, "sleepy", False)]
    before = _waiting_upstream(crawl_simulator)
    for stream in streams + waiting:
        stream.start()
    _wait(lambda: all(s.chunks >= 4 for s in streams), 20, "every stream to be flowing")
    _wait(lambda: _waiting_upstream(crawl_simulator) >= before + 3, 20, "the slow calls to reach the provider")
    stopped_at = time.monotonic()
    gateway.process.send_signal(signal.SIGTERM)
    for stream in streams + waiting:
        stream.join(timeout=30)
    assert gateway.process.wait(timeout=30) == 0
    assert time.monotonic() - stopped_at < 20, "the streams did not run to their end: they were stopped"
    for stream in streams[:3]:  # OpenAI's format: an error object as the last data event
        last = orjson.loads(next(line for line in reversed(stream.lines) if line.startswith("data: {"))[6:])
        assert last["error"]["code"] == "gateway_shutting_down", stream.lines[-3:]
        assert "data: [DONE]" not in stream.lines
    for stream in streams[3:]:  # Anthropic's: an `error` event
        assert "event: error" in stream.lines, stream.lines[-4:]
        error = orjson.loads(stream.lines[stream.lines.index("event: error") + 1][6:])
        assert error["type"] == "error" and error["error"]["type"] == "overloaded_error"
    # not answered yet: an error response in the client's format (503, which the SDKs retry elsewhere)
    assert [s.status for s in waiting] == [503] * 3, [(s.status, s.lines, s.failure) for s in waiting]
    for stream in (waiting[0], waiting[2]):
        assert orjson.loads("".join(stream.lines))["error"]["code"] == "gateway_shutting_down"
    assert orjson.loads("".join(waiting[1].lines))["error"]["type"] == "overloaded_error"
    rows = _rows(tmp_path)
    mine = [rows[s.request_id] for s in streams if s.request_id]
    assert len(mine) == 6, "every stream has its row"
    for row in mine:
        assert row["outcome"] == "interrupted" and row["usage_estimated"] == 1
        assert row["output_tokens"] >= 4 and row["input_tokens"] > 0 and row["cost_micros"] > 0
    unanswered = [rows[s.request_id] for s in waiting if s.request_id]
    assert len(unanswered) == 3, "every request not answered yet has its row"
    for row in unanswered:  # the provider had the prompt: it is billed, as an estimate
        assert row["outcome"] == "interrupted" and row["usage_estimated"] == 1 and row["status"] == 503
        assert row["input_tokens"] > 0 and row["output_tokens"] == 0 and row["cost_micros"] > 0
    spent, reserved = _global_budget(prefix)
    assert reserved == 0, "every reservation was settled"
    assert spent == sum(row["cost_micros"] for row in mine + unanswered)


def test_after_sigkill_a_restart_leaves_a_row_for_every_stream_whose_head_reached_a_client(
    crawl_simulator: Proc, tmp_path: Path
) -> None:
    prefix = "sgtest-kill-" + secrets.token_hex(4)
    gateway = _gateway(crawl_simulator, tmp_path, "killed", 30, prefix)
    done = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        headers=AUTH,
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stream": True},
    )
    finished_id = done.headers["x-sluice-request-id"]
    streams = [_openai(gateway.url) for _ in range(4)] + [_anthropic(gateway.url) for _ in range(3)]
    for stream in streams:
        stream.start()
    _wait(lambda: all(s.request_id for s in streams), 20, "every stream's head")
    time.sleep(2.6)  # past one progress interval: the rows carry what was relayed, not only the prompt
    gateway.process.kill()
    gateway.process.wait()
    for stream in streams:
        stream.join(timeout=10)
    restarted = _gateway(crawl_simulator, tmp_path, "killed", 30, prefix)
    try:
        ids = [s.request_id for s in streams]
        _wait(lambda: all(i in _rows(tmp_path) for i in ids), 20, "a row for every stream")
        time.sleep(0.5)  # a doubled or overwritten row would show now
        rows = _rows(tmp_path)
        for stream in streams:
            row = rows[stream.request_id]  # type: ignore[index]
            assert row["usage_estimated"] == 1 and row["stream"] == 1
            assert row["outcome"] == "interrupted"  # closed by the instance that took the spool over
            assert row["input_tokens"] > 0
            assert row["output_tokens"] >= min(stream.chunks, 10) > 0, (row, stream.chunks)
        assert rows[finished_id]["outcome"] == "ok" and rows[finished_id]["usage_estimated"] == 0
    finally:
        restarted.stop()
