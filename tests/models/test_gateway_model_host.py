"""The model host inside the gateway: built only when configured, started only when a feature asks, and the
provider backend served by one of the gateway's own embedding groups."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import generate_latest

from sluicegate.config.loader import ConfigError, parse_config
from sluicegate.models.local import LocalBackend
from sluicegate.server.gateway import Gateway
from tests.conftest import UPSTREAM_KEY, Proc


def gateway_yaml(tmp_path: Path, simulator_url: str, model_host: str) -> str:
    return f"""
server: {{access_log: {{enabled: false}}}}
store: {{database_url: "sqlite+aiosqlite:///{tmp_path}/gw.db", spool_dir: "{tmp_path}/spool"}}
providers:
  sim: {{kind: openai, base_url: "{simulator_url}/v1", api_key_env: SIM_UPSTREAM_KEY}}
models:
  - name: gpt-4o-mini
    deployments: [{{provider: sim, model: gpt-4o-mini}}]
  - name: embed
    kind: embedding
    deployments: [{{provider: sim, model: text-embedding-3-small}}]
{model_host}
"""


async def test_the_provider_backend_embeds_through_the_gateways_own_group(
    simulator: Proc, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIM_UPSTREAM_KEY", UPSTREAM_KEY)
    host_yaml = "model_host: {embeddings: {backend: provider, group: embed, dimensions: 64}, deadline_ms: 5000}"
    gateway = Gateway(parse_config(gateway_yaml(tmp_path, simulator.url, host_yaml)), master_key="sk-master")
    assert gateway.model_host is not None
    embedder = gateway.model_host.embedder(fail="closed")  # what a feature does when it is built
    await gateway.start()
    try:
        vectors = await embedder.embed(["the cat sat on the mat", "a cat sat on a mat", "tax law"])
        assert isinstance(vectors, np.ndarray) and vectors.shape == (3, 64)
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
        assert float(vectors[0] @ vectors[1]) > float(vectors[0] @ vectors[2])
        metrics = generate_latest(gateway.metrics.registry).decode()
        assert 'sluicegate_model_host_calls_total{outcome="ok",task="embed"} 1.0' in metrics
        assert "sluicegate_model_host_call_seconds_bucket" in metrics
    finally:
        await gateway.stop()
    with sqlite3.connect(tmp_path / "gw.db") as db:  # the ledger drained into the database as it stopped
        rows = db.execute(
            "SELECT model, endpoint, status, input_tokens, key_id FROM spend_ledger WHERE feature = 'model-host'"
        ).fetchall()
    [(model, endpoint, status, input_tokens, key_id)] = rows
    assert (model, endpoint, status, key_id) == ("embed", "embeddings", 200, "model-host")
    assert input_tokens > 0  # its tokens are accounted for


async def test_a_configured_host_that_no_feature_uses_starts_no_process(
    simulator: Proc, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIM_UPSTREAM_KEY", UPSTREAM_KEY)
    gateway = Gateway(parse_config(gateway_yaml(tmp_path, simulator.url, "model_host: {}")), master_key="sk-master")
    host = gateway.model_host
    assert host is not None and isinstance(host.backend, LocalBackend)
    await gateway.start()
    try:
        assert not host.started and host.backend.pids == [None]
        metrics = generate_latest(gateway.metrics.registry).decode()
        assert "sluicegate_model_host_workers_up 0.0" in metrics
    finally:
        await gateway.stop()


def test_without_the_section_the_model_host_is_not_even_imported(tmp_path: Path) -> None:
    script = f"""
import sys
from sluicegate.config.loader import parse_config
from sluicegate.server.gateway import Gateway
config = parse_config('store: {{database_url: "sqlite+aiosqlite:///{tmp_path}/x.db"}}')
gateway = Gateway(config, master_key="k")
print(gateway.model_host is None, "sluicegate.models.host" in sys.modules, "numpy" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split() == ["True", "False", "False"]


def test_the_provider_backend_must_name_an_embedding_group(tmp_path: Path) -> None:
    host_yaml = "model_host: {embeddings: {backend: provider, group: gpt-4o-mini}}"
    expected = r"model_host\.embeddings\.group: model host model 'gpt-4o-mini' is a chat model"
    with pytest.raises(ConfigError, match=expected):
        parse_config(gateway_yaml(tmp_path, "http://127.0.0.1:9", host_yaml))


async def test_a_stage_that_asks_for_the_host_when_built_starts_it_with_the_gateway(
    simulator: Proc, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sluicegate.models.host import Embedder
    from sluicegate.pipeline import stages

    monkeypatch.setenv("SIM_UPSTREAM_KEY", UPSTREAM_KEY)
    handles: list[Embedder[None]] = []

    def build(names: list[str], services: stages.StageServices) -> dict[stages.Slot, list[object]]:
        assert services.model_host is not None  # the host exists before the stages are built
        handles.append(services.model_host.embedder(fail="closed", deadline_ms=5000))  # as a feature's create()
        return {"request": [], "output": [], "record": []}

    monkeypatch.setattr(stages, "build", build)
    gateway = Gateway(parse_config(gateway_yaml(tmp_path, simulator.url, "model_host: {}")), master_key="sk-master")
    host = gateway.model_host
    assert host is not None and isinstance(host.backend, LocalBackend)
    await gateway.start()
    try:
        assert host.started and await host.backend.wait_ready(60)
        [pid] = host.backend.pids
        vectors = await handles[0].embed(["hello"])
        assert isinstance(vectors, np.ndarray) and vectors.shape == (1, 256)
    finally:
        await gateway.stop()
    assert host.backend.pids == [None] and pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the child is gone with the gateway
