"""A gateway behind an egress proxy: the real `serve` process (uvloop) reaches its provider only through a
CONNECT proxy named by HTTP_PROXY, as a platform team's network makes it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.conftest import MASTER_KEY, UPSTREAM_KEY, Proc, free_port, start_process
from tests.providers.test_egress import ConnectProxy


@pytest.fixture
def proxy() -> Iterator[ConnectProxy]:
    """The proxy on its own event loop in a thread, beside the gateway process."""
    running = ConnectProxy()
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(running.start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10)
    yield running
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def test_the_gateway_reaches_its_provider_through_the_proxy(
    simulator: Proc, proxy: ConnectProxy, tmp_path: Path
) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(
        f"""
server: {{access_log: {{enabled: false}}}}
providers:
  sim:
    kind: openai
    base_url: {simulator.url}/v1
    api_key_env: SIM_UPSTREAM_KEY
models:
  - name: gpt-4o-mini
    deployments: [{{provider: sim, model: gpt-4o-mini}}]
"""
    )
    port = free_port()
    env = {
        "SLUICEGATE_MASTER_KEY": MASTER_KEY,
        "SIM_UPSTREAM_KEY": UPSTREAM_KEY,
        "HTTP_PROXY": proxy.url,
        "NO_PROXY": "",
        "no_proxy": "",
    }
    gateway = start_process(["serve", "--config", str(config), "--port", str(port)], port, tmp_path, "egress", env)
    try:
        client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=MASTER_KEY, max_retries=0, timeout=30)
        whole = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        assert whole.choices[0].message.content
        chunks = list(
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
            )
        )
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert proxy.tunnels and set(proxy.tunnels) == {simulator.url.removeprefix("http://")}
    finally:
        gateway.stop()
