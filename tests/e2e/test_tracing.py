"""OpenTelemetry traces, received by a local OTLP/HTTP endpoint: a span per request (GenAI attributes), per
stage and per upstream attempt; the trace id in the response header, the access log and the ledger; head
sampling by ratio, and a client's `traceparent` continued (its sampled flag wins)."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.conftest import MASTER_KEY, Proc, start_gateway


class Receiver:
    """An OTLP/HTTP trace endpoint that keeps every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        received = self.spans

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                request = ExportTraceServiceRequest()
                request.ParseFromString(self.rfile.read(int(self.headers["content-length"])))
                for resource in request.resource_spans:
                    service = {a.key: a.value.string_value for a in resource.resource.attributes}["service.name"]
                    for scope in resource.scope_spans:
                        for span in scope.spans:
                            received.append(
                                {
                                    "service": service,
                                    "name": span.name,
                                    "kind": span.kind,
                                    "trace_id": span.trace_id.hex(),
                                    "span_id": span.span_id.hex(),
                                    "parent": span.parent_span_id.hex(),
                                    "start": span.start_time_unix_nano,
                                    "end": span.end_time_unix_nano,
                                    "attributes": {a.key: _value(a.value) for a in span.attributes},
                                }
                            )
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def trace(self, trace_id: str, timeout: float = 15.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            spans = [s for s in self.spans if s["trace_id"] == trace_id]
            if any(s["kind"] == 2 for s in spans):  # the request's own span comes last
                return spans
            time.sleep(0.1)
        raise AssertionError(f"no spans for trace {trace_id}")


def _value(value: Any) -> Any:
    return getattr(value, value.WhichOneof("value"))


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


def _gateway(simulator: Proc, workdir: Path, name: str, receiver: Receiver, ratio: float) -> Proc:
    extra = f"""
tracing:
  endpoint: {receiver.url}
  sample_ratio: {ratio}
  service_name: {name}
  export_interval_seconds: 0.2
"""
    return start_gateway(simulator, workdir, name, extra)


@pytest.fixture(scope="module")
def traced(
    simulator: Proc, receiver: Receiver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Proc, Path]]:
    workdir = tmp_path_factory.mktemp("traced")
    gw = _gateway(simulator, workdir, "traced", receiver, 1.0)
    yield gw, workdir
    gw.stop()


@pytest.fixture(scope="module")
def unsampled(simulator: Proc, receiver: Receiver, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    gw = _gateway(simulator, tmp_path_factory.mktemp("unsampled"), "unsampled", receiver, 0.0)
    yield gw
    gw.stop()


def test_a_request_is_traced_with_genai_attributes_stages_and_its_upstream_call(
    traced: tuple[Proc, Path], receiver: Receiver
) -> None:
    gw, workdir = traced
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=MASTER_KEY, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}], max_tokens=20, temperature=0.3
    )
    trace_id = raw.headers["x-sluice-trace-id"]
    assert len(trace_id) == 32
    spans = receiver.trace(trace_id)
    root = next(s for s in spans if s["kind"] == 2)  # SERVER
    assert root["service"] == "traced"
    assert root["name"] == "chat gpt-4o-mini"
    assert root["parent"] == ""
    attributes = root["attributes"]
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert attributes["gen_ai.request.max_tokens"] == 20
    assert attributes["gen_ai.provider.name"] == "openai"
    completion = raw.parse()
    assert attributes["gen_ai.usage.input_tokens"] == completion.usage.prompt_tokens
    assert attributes["gen_ai.usage.output_tokens"] == completion.usage.completion_tokens
    assert attributes["sluicegate.cost_usd"] == pytest.approx(float(raw.headers["x-sluice-cost-usd"]))

    upstream = [s for s in spans if s["kind"] == 3]  # CLIENT: the call to the provider
    assert len(upstream) == 1
    assert upstream[0]["parent"] == root["span_id"]
    assert upstream[0]["attributes"]["sluicegate.deployment"] == raw.headers["x-sluice-deployment"]
    assert upstream[0]["attributes"]["sluicegate.attempt.outcome"] == "ok"
    stages = {s["name"] for s in spans if s["name"].startswith("stage ")}
    assert {"stage auth", "stage admission", "stage route", "stage ledger"} <= stages
    for span in spans:
        assert root["start"] <= span["start"] <= span["end"] <= root["end"]
        if span is not root:
            assert span["parent"] == root["span_id"]

    # the same id in the access log and the ledger
    deadline = time.monotonic() + 10
    while True:
        lines = [json.loads(line) for line in (workdir / "traced-access.log").read_text().splitlines()]
        if any(line.get("trace_id") == trace_id for line in lines):
            break
        assert time.monotonic() < deadline, "no access log line with the trace id"
        time.sleep(0.1)
    while True:
        with sqlite3.connect(workdir / ".sluicegate" / "sluicegate.db") as db:
            row = db.execute(
                "select trace_id from spend_ledger where request_id = ?", (raw.headers["x-sluice-request-id"],)
            ).fetchone()
        if row is not None:
            break
        assert time.monotonic() < deadline, "no ledger row"
        time.sleep(0.1)
    assert row[0] == trace_id


def test_a_clients_traceparent_is_continued(traced: tuple[Proc, Path], receiver: Receiver) -> None:
    gw, _ = traced
    trace_id, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    response = httpx.post(
        f"{gw.url}/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stream": True},
        headers={"authorization": f"Bearer {MASTER_KEY}", "traceparent": f"00-{trace_id}-{parent}-01"},
    )
    assert response.status_code == 200
    assert response.headers["x-sluice-trace-id"] == trace_id
    root = next(s for s in receiver.trace(trace_id) if s["kind"] == 2)
    assert root["parent"] == parent
    assert root["attributes"]["sluicegate.time_to_first_token_s"] > 0


def test_unsampled_requests_export_nothing_but_keep_their_trace_id(unsampled: Proc, receiver: Receiver) -> None:
    headers = {"authorization": f"Bearer {MASTER_KEY}"}
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    ids = [
        httpx.post(f"{unsampled.url}/v1/chat/completions", json=body, headers=headers).headers["x-sluice-trace-id"]
        for _ in range(5)
    ]
    assert len(set(ids)) == 5
    # a client that samples its trace is followed even at ratio 0; a client that does not is not
    sampled, unsampled_id = "a" * 32, "b" * 32
    httpx.post(
        f"{unsampled.url}/v1/chat/completions",
        json=body,
        headers={**headers, "traceparent": f"00-{sampled}-{'1' * 16}-01"},
    )
    httpx.post(
        f"{unsampled.url}/v1/chat/completions",
        json=body,
        headers={**headers, "traceparent": f"00-{unsampled_id}-{'1' * 16}-00"},
    )
    receiver.trace(sampled)
    time.sleep(1.0)  # two export intervals more
    exported = {s["trace_id"] for s in receiver.spans if s["service"] == "unsampled"}
    assert exported == {sampled}


def test_a_refused_request_carries_its_trace_id(unsampled: Proc) -> None:
    response = httpx.post(
        f"{unsampled.url}/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        headers={"authorization": "Bearer sk-not-a-key"},
    )
    assert response.status_code == 401
    assert len(response.headers["x-sluice-trace-id"]) == 32
