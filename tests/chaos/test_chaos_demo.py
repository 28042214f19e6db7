"""The demo shows failover: `sluicegate chaos` passes its drills against `sluicegate serve --demo`; and it
caches: a newcomer's second ask is answered by the response cache."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import httpx

from sluicegate.routing.chaos import SCENARIOS
from tests.conftest import free_port, start_process

DEMO_KEY = "sk-sluice-demo"


def test_the_chaos_drill_passes_on_the_demo(tmp_path: Path) -> None:
    port, simulator_port = free_port(), free_port()
    args = ["serve", "--demo", "--port", str(port), "--simulator-port", str(simulator_port)]
    demo = start_process(args, port, tmp_path, "demo", ready_path="/health/ready")
    try:
        auth = {"authorization": f"Bearer {DEMO_KEY}"}
        deployments = httpx.get(f"{demo.url}/admin/routing/deployments", headers=auth).json()["deployments"]
        chat = {g for d in deployments for g in d["groups"] if not g.startswith("text-embedding")}
        for group in chat:  # every chat model can fail over to another provider
            providers = {d["deployment"].split("/")[0] for d in deployments if group in d["groups"]}
            assert len(providers) >= 2, (group, providers)
        # The demo caches: the second ask is a hit (and, with the local model installed, the cache also looks
        # questions up by meaning)
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]}
        asks = [httpx.post(f"{demo.url}/v1/chat/completions", json=body, headers=auth, timeout=30) for _ in range(2)]
        assert [a.status_code for a in asks] == [200, 200], asks[0].text
        assert [a.headers["x-sluice-cache"] for a in asks] == ["miss", "hit-exact"]
        assert asks[1].json()["choices"] == asks[0].json()["choices"]
        metrics = httpx.get(f"{demo.url}/metrics", timeout=10).text
        assert ("sluicegate_response_cache_vectors" in metrics) == (find_spec("wordllama") is not None)
        # Shorter drills than the command's defaults: every scenario, one demo model. Long enough that the
        # calls in flight when a fault begins (one retry each, up to the drill's 8 concurrent requests) are a
        # small share: at the demo's 0.3-0.5 s a request, 4 s gave 64 requests and 1.12 calls per request.
        drill = ["--gateway", demo.url, "--simulator", f"http://127.0.0.1:{simulator_port}", "--model", "gpt-4o-mini"]
        done = subprocess.run(
            [sys.executable, "-m", "sluicegate", "chaos", *drill, "--warmup", "1", "--duration", "8"],
            capture_output=True,
            text=True,
            timeout=150,
            env={**os.environ, "SLUICEGATE_MASTER_KEY": DEMO_KEY},
        )
        assert done.returncode == 0, done.stdout
        rows = [line for line in done.stdout.splitlines() if line.endswith(" ok")]
        assert len(rows) == len(SCENARIOS), done.stdout
    finally:
        demo.stop()
