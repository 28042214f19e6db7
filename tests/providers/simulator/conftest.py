"""Runs simulator apps under a real uvicorn server on an ephemeral port, inside the test's event loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import openai
import pytest
import uvicorn

from sluicegate.providers.simulator import SimulatorApp, SimulatorConfig, create_app


class FakeClock:
    """Monotonic time the test moves by hand (outage windows without sleeping)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class RunningSimulator:
    app: SimulatorApp
    url: str
    clients: list[openai.AsyncOpenAI] = field(default_factory=list)

    def client(self, **kwargs: Any) -> openai.AsyncOpenAI:
        options: dict[str, Any] = {"api_key": "sk-test", "max_retries": 0, "timeout": 5.0, **kwargs}
        client = openai.AsyncOpenAI(base_url=self.url + "/v1", **options)
        self.clients.append(client)
        return client

    async def control(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, self.url + path, json=body) as response,
        ):
            return response.status, await response.json(content_type=None)

    async def stats(self, model: str) -> dict[str, Any]:
        _, body = await self.control("GET", "/_sim/stats")
        return body["models"].get(model, {})

    async def wait_for_stat(self, model: str, key: str, value: int, timeout: float = 2.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while (await self.stats(model)).get(key) != value:
            assert asyncio.get_running_loop().time() < deadline, await self.stats(model)
            await asyncio.sleep(0.02)


StartSimulator = Callable[..., Awaitable[RunningSimulator]]


@pytest.fixture
async def start_simulator() -> AsyncIterator[StartSimulator]:
    servers: list[tuple[uvicorn.Server, asyncio.Task[None]]] = []
    running: list[RunningSimulator] = []

    async def start(config: SimulatorConfig | None = None, **app_options: Any) -> RunningSimulator:
        app = create_app(config or SimulatorConfig(seed=1), **app_options)
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=0, log_level="critical", timeout_graceful_shutdown=1)
        )
        task = asyncio.create_task(server.serve())
        servers.append((server, task))
        while not server.started:
            assert not task.done(), "uvicorn failed to start"
            await asyncio.sleep(0.005)
        port = server.servers[0].sockets[0].getsockname()[1]
        running.append(RunningSimulator(app, f"http://127.0.0.1:{port}"))
        return running[-1]

    yield start
    await asyncio.gather(*(client.close() for sim in running for client in sim.clients))
    for server, _ in servers:
        server.should_exit = True
    await asyncio.gather(*(task for _, task in servers))


@pytest.fixture
async def sim(start_simulator: StartSimulator) -> RunningSimulator:
    return await start_simulator()
