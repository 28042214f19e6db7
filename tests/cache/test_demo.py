"""The demo caches: a newcomer's second ask is answered by the response cache, and with the local embedding
model installed the cache also looks questions up by meaning."""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

import httpx
import pytest

from sluicegate.config import loader
from sluicegate.server.gateway import Gateway
from tests.conftest import free_port, start_process


def test_the_second_ask_on_the_demo_is_a_cache_hit(tmp_path: Path) -> None:
    port, simulator_port = free_port(), free_port()
    args = ["serve", "--demo", "--port", str(port), "--simulator-port", str(simulator_port)]
    demo = start_process(args, port, tmp_path, "demo", ready_path="/health/ready")
    try:
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]}
        headers = {"authorization": "Bearer sk-sluice-demo"}
        url = f"{demo.url}/v1/chat/completions"
        first = httpx.post(url, json=body, headers=headers, timeout=30)
        second = httpx.post(url, json=body, headers=headers, timeout=30)
        assert first.status_code == second.status_code == 200, first.text
        assert (first.headers["x-sluice-cache"], second.headers["x-sluice-cache"]) == ("miss", "hit-exact")
        assert second.json()["choices"] == first.json()["choices"]
        metrics = httpx.get(f"{demo.url}/metrics", timeout=10).text
        semantic_on = find_spec("wordllama") is not None
        assert ("sluicegate_response_cache_vectors" in metrics) == semantic_on
        assert ("sluicegate_model_host_workers_up" in metrics) == semantic_on
    finally:
        demo.stop()


def test_without_the_local_model_the_demo_caches_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loader, "find_spec", lambda name: None if name == "wordllama" else object())
    config = loader.demo_config("http://127.0.0.1:9")
    assert config.model_host is None and config.response_cache is not None
    assert config.response_cache.semantic.enabled  # asked for, but nothing to embed with: exact only
    gateway = Gateway(config, master_key="sk-master", environ={})
    cache = next(s for s in gateway.pipeline.stages if getattr(s, "name", "") == "response_cache")
    assert cache.semantic is None  # type: ignore[attr-defined]
