"""The learned classifier: a head over the model host's embeddings, falling back to the heuristic when the
host cannot answer in time or the head is not confident."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import numpy as np
import pytest
from prometheus_client import generate_latest

from sluicegate.classify.classification import Prompt
from sluicegate.classify.learned import Head, LearnedClassifier, LocalEncoder, decide
from sluicegate.config.loader import parse_config
from sluicegate.config.schema import GatewayConfig
from sluicegate.server.app import GatewayApp
from sluicegate.server.gateway import Gateway
from tests.conftest import UPSTREAM_KEY, Proc

HARD = Prompt([{"role": "user", "content": "Prove that every bounded monotone sequence of reals converges."}])
EASY = Prompt([{"role": "user", "content": "Hi! Thanks a lot for your help."}])


@pytest.fixture(scope="module")
def encoder() -> LocalEncoder:
    pytest.importorskip("wordllama")
    return LocalEncoder()


def test_the_shipped_head_fits_the_local_model() -> None:
    head = Head.shipped()
    assert head.weights.shape == (256 + 16, 3)


def test_unsure_heads_go_up_a_tier() -> None:
    assert decide(np.array([0.5, 0.3, 0.2])) == (1, pytest.approx(0.3))  # half the mass is at balanced or above
    assert decide(np.array([0.9, 0.05, 0.05]))[0] == 0
    assert decide(np.array([0.1, 0.2, 0.7]))[0] == 2


async def test_without_the_model_host_the_heuristic_answers_and_says_so() -> None:
    reasons: list[str] = []

    async def away(texts: Sequence[str]) -> None:
        return None  # what a fail-open embedder returns when the host is late, down or overloaded

    classifier = LearnedClassifier(away, fell_back=reasons.append)
    c = await classifier.classify(HARD)
    assert c.by == "heuristic" and c.task == "math" and reasons == ["unavailable"]


async def test_with_embeddings_it_answers_within_its_tier(encoder: LocalEncoder) -> None:
    reasons: list[str] = []
    classifier = LearnedClassifier(encoder.embed_async, min_confidence=0.0, fell_back=reasons.append)
    hard = await classifier.classify(HARD)
    easy = await classifier.classify(EASY)
    assert hard.by == easy.by == "learned" and not reasons
    assert hard.complexity > 2 / 3 and easy.complexity <= 1 / 3
    assert hard.header().endswith("by=learned")
    strict = LearnedClassifier(encoder.embed_async, min_confidence=1.0, fell_back=reasons.append)
    assert (await strict.classify(EASY)).by == "heuristic" and reasons == ["not_confident"]


def test_head_and_embedding_take_well_under_ten_milliseconds(encoder: LocalEncoder) -> None:
    classifier = LearnedClassifier(encoder.embed_async, min_confidence=0.0)
    prompt = Prompt([{"role": "user", "content": "Summarise the attached report for the board. " * 40}])
    samples = []
    for _ in range(30):
        began = time.process_time()
        asyncio.run(classifier.classify(prompt))
        samples.append(time.process_time() - began)
    samples.sort()
    assert samples[int(len(samples) * 0.95)] < 0.05  # generous under load; bench/classify.py measures it


def test_the_learned_classifier_needs_the_model_host() -> None:
    config = GatewayConfig.model_validate({"classify": {"classifier": "learned"}})
    assert any("needs the model host" in message for _, message in config.reference_problems())


async def test_a_gateway_classifies_auto_requests_on_the_model_hosts_embeddings(
    simulator: Proc, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("wordllama")
    monkeypatch.setenv("SIM_UPSTREAM_KEY", UPSTREAM_KEY)
    config = parse_config(
        f"""
server: {{access_log: {{enabled: false}}}}
store: {{database_url: "sqlite+aiosqlite:///{tmp_path}/gw.db", spool_dir: "{tmp_path}/spool"}}
providers:
  sim: {{kind: openai, base_url: "{simulator.url}/v1", api_key_env: SIM_UPSTREAM_KEY}}
models:
  - name: small
    deployments: [{{provider: sim, model: gpt-4o-mini}}]
  - name: large
    deployments: [{{provider: sim, model: gpt-4o}}]
  - name: auto
    routing: {{strategy: auto}}
    pool: [small, large]
model_host: {{deadline_ms: 5000}}
classify: {{classifier: learned, min_confidence: 0, deadline_ms: 1000}}
"""
    )
    gateway = Gateway(config, master_key="sk-master")
    await gateway.start()
    transport = httpx.ASGITransport(app=GatewayApp(gateway))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://gw", timeout=30) as client:
            deadline = time.monotonic() + 30
            while True:  # the host's child loads its model after start: until then the heuristic answers
                response = await client.post(
                    "/v1/chat/completions",
                    json={"model": "auto", "messages": list(EASY.messages)},
                    headers={"authorization": "Bearer sk-master"},
                )
                assert response.status_code == 200, response.text
                if response.headers["x-sluice-classification"].endswith("by=learned"):
                    break
                assert time.monotonic() < deadline, "the learned classifier never answered"
                await asyncio.sleep(0.5)
        metrics = generate_latest(gateway.metrics.registry).decode()
    finally:
        await gateway.stop()
    assert response.headers["x-sluice-tier"] == "economy"
    assert 'sluicegate_model_host_calls_total{outcome="ok",task="embed"}' in metrics
    assert 'sluicegate_auto_decisions_total{by="learned",group="small",task="chat",tier="economy"} 1.0' in metrics
