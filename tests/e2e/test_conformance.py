"""Conformance: every ingress x every provider family x {whole, streamed}, on recorded multi-tool payloads.

A replay upstream serves each family's recorded response (several tool calls in one turn, text beside them);
the official openai and anthropic SDKs must see the same text, tool calls and stop reason whatever the family.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from tests.conftest import MASTER_KEY, Proc, free_port, start_process, wait_http

ROOT = Path(__file__).parents[2]

# (family, streamed) -> (text, [(tool name, arguments)]), as recorded in tests/fixtures.
EXPECTED: dict[tuple[str, bool], tuple[str, list[tuple[str, dict[str, Any]]]]] = {
    ("openai", False): ("", [("get_weather", {"location": "Paris, France"}), ("get_time", {"tz": "Europe/Paris"})]),
    ("openai", True): ("", [("get_weather", {"location": "Paris, France"}), ("get_time", {"tz": "Europe/Paris"})]),
    ("anthropic", False): (
        "I'll check both cities.",
        [
            ("get_weather", {"location": "San Francisco, CA", "unit": "celsius"}),
            ("get_weather", {"location": "New York, NY", "unit": "celsius"}),
        ],
    ),
    ("anthropic", True): (
        "Okay, let's check the weather:",
        [("get_weather", {"location": "San Francisco, CA"}), ("get_time", {"tz": "America/Los_Angeles"})],
    ),
    ("gemini", False): ("", [("get_weather", {"location": "Boston, MA"}), ("get_weather", {"location": "Paris"})]),
    ("gemini", True): ("", [("get_weather", {"location": "Boston"}), ("get_time", {"tz": "EST"})]),
    ("bedrock", False): ("I'll look that up.", [("top_song", {"sign": "WZPZ"})]),
    ("bedrock", True): ("Let me check.", [("top_song", {"sign": "WZPZ"}), ("top_song", {"sign": "KXYZ"})]),
}
FAMILIES = ["openai", "anthropic", "gemini", "bedrock"]
TOOLS = [
    {"type": "function", "function": {"name": n, "parameters": {"type": "object"}}}
    for n in ("get_weather", "get_time", "top_song")
]


@pytest.fixture(scope="module")
def replay_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    workdir = tmp_path_factory.mktemp("conformance")
    port = free_port()
    replay = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "tests.e2e.replay:app", "--port", str(port), "--log-level", "warning"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/ready", replay)
        upstream = f"http://127.0.0.1:{port}"
        config = workdir / "gateway.yaml"
        config.write_text(
            f"""
server: {{access_log: {{enabled: false}}}}
providers:
  openai: {{kind: openai, base_url: "{upstream}/openai"}}
  anthropic: {{kind: anthropic, base_url: "{upstream}/anthropic"}}
  gemini: {{kind: gemini, base_url: "{upstream}/gemini"}}
  bedrock: {{kind: bedrock, base_url: "{upstream}/bedrock", aws_region: us-east-1, headers: {{authorization: replay}}}}
models:
"""
            + "".join(f"  - name: {f}\n    deployments: [{{provider: {f}, model: recorded}}]\n" for f in FAMILIES)
        )
        gateway_port = free_port()
        gateway = start_process(
            ["serve", "--config", str(config), "--port", str(gateway_port)],
            gateway_port,
            workdir,
            "gateway",
            {"SLUICEGATE_MASTER_KEY": MASTER_KEY},
            "/health/ready",
        )
        yield gateway
        gateway.stop()
    finally:
        replay.terminate()
        replay.wait(timeout=10)


@pytest.mark.parametrize("streamed", [False, True])
@pytest.mark.parametrize("family", FAMILIES)
def test_openai_sdk(replay_gateway: Proc, family: str, streamed: bool) -> None:
    client = openai.OpenAI(base_url=f"{replay_gateway.url}/v1", api_key=MASTER_KEY, max_retries=0)
    text, calls = EXPECTED[(family, streamed)]
    messages = [{"role": "user", "content": "Look these up."}]
    if not streamed:
        choice = client.chat.completions.create(model=family, messages=messages, tools=TOOLS).choices[0]  # type: ignore[arg-type]
        got_text, finish = choice.message.content or "", choice.finish_reason
        got = [(c.function.name, json.loads(c.function.arguments)) for c in choice.message.tool_calls or []]  # type: ignore[union-attr]
        ids = [c.id for c in choice.message.tool_calls or []]
    else:
        pieces: list[str] = []
        by_index: dict[int, dict[str, str]] = {}
        finish = None
        stream = client.chat.completions.create(model=family, messages=messages, tools=TOOLS, stream=True)  # type: ignore[arg-type]
        for chunk in stream:
            for c in chunk.choices:
                pieces.append(c.delta.content or "")
                for call in c.delta.tool_calls or ():
                    entry = by_index.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                    entry["id"] += call.id or ""
                    entry["name"] += (call.function.name if call.function else None) or ""
                    entry["arguments"] += (call.function.arguments if call.function else None) or ""
                finish = c.finish_reason or finish
        got_text = "".join(pieces)
        got = [(e["name"], json.loads(e["arguments"])) for _, e in sorted(by_index.items())]
        ids = [e["id"] for _, e in sorted(by_index.items())]
    assert (got_text, got, finish) == (text, calls, "tool_calls")
    assert len(set(ids)) == len(ids) and all(ids)


@pytest.mark.parametrize("streamed", [False, True])
@pytest.mark.parametrize("family", FAMILIES)
def test_anthropic_sdk(replay_gateway: Proc, family: str, streamed: bool) -> None:
    client = anthropic.Anthropic(base_url=replay_gateway.url, api_key=MASTER_KEY, max_retries=0)
    text, calls = EXPECTED[(family, streamed)]
    tools = [{"name": t["function"]["name"], "input_schema": {"type": "object"}} for t in TOOLS]
    kwargs: dict[str, Any] = {"model": family, "max_tokens": 500, "messages": [{"role": "user", "content": "Go"}]}
    if streamed:
        with client.messages.stream(**kwargs, tools=tools) as stream:  # type: ignore[arg-type]
            message = stream.get_final_message()
    else:
        message = client.messages.create(**kwargs, tools=tools)  # type: ignore[arg-type]
    got_text = "".join(b.text for b in message.content if b.type == "text")
    got = [(b.name, b.input) for b in message.content if b.type == "tool_use"]
    assert (got_text, got, message.stop_reason) == (text, calls, "tool_use")
    assert len({b.id for b in message.content if b.type == "tool_use"}) == len(calls)
