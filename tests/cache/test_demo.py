"""The demo without the local embedding model: its cache is exact only (the demo itself, with a second ask
answered by the cache, is tested in tests/chaos/test_chaos_demo.py beside its drills)."""

from __future__ import annotations

import pytest

from sluicegate.config import loader
from sluicegate.server.gateway import Gateway


def test_without_the_local_model_the_demo_caches_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loader, "find_spec", lambda name: None if name == "wordllama" else object())
    config = loader.demo_config("http://127.0.0.1:9")
    assert config.model_host is None and config.response_cache is not None
    assert config.response_cache.semantic.enabled  # asked for, but nothing to embed with: exact only
    gateway = Gateway(config, master_key="sk-master", environ={})
    cache = next(s for s in gateway.pipeline.stages if getattr(s, "name", "") == "response_cache")
    assert cache.semantic is None  # type: ignore[attr-defined]
