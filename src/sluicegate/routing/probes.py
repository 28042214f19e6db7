"""Optional active health probes: a tiny call to every deployment on a timer, judged by its breaker.

A failing probe counts as a failure, so an idle deployment that died leaves rotation before a user's
request finds out; a succeeding probe counts as a success, so a half-open breaker closes on probes rather
than on users' requests. Probes go through the breaker like any call: none while it is open. Each probe
is a one-token completion (or a one-word embedding) and costs that much.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sluicegate.canonical import ChatRequest, EmbeddingRequest
from sluicegate.catalog import Deployment
from sluicegate.errors import UpstreamError
from sluicegate.providers.http import UpstreamClient
from sluicegate.routing.breaker import Outcome
from sluicegate.routing.router import Router

log = logging.getLogger("sluicegate.routing")

_NOT_ILL = ("rate_limited", "bad_request", "context_window", "content_policy")  # busy or picky, not down
_PROBE_MESSAGES = [{"role": "user", "content": "ping"}]


class HealthProber:
    def __init__(self, router: Router, client: UpstreamClient, interval_s: float) -> None:
        self._router = router
        self._client = client
        self._interval = interval_s
        self._kinds: dict[str, str] = {}
        for group in router.catalog:
            for d in group.deployments:
                self._kinds.setdefault(d.name, group.kind)
        self._task: asyncio.Task[None] | None = None

    async def _call(self, deployment: Deployment, kind: str) -> None:
        adapter, endpoint = deployment.adapter, deployment.endpoint
        if kind == "embedding":
            request = adapter.embedding_request(endpoint, deployment.model, EmbeddingRequest(deployment.model, "ping"))
        else:
            chat = ChatRequest(deployment.model, list(_PROBE_MESSAGES), max_tokens=1)  # type: ignore[arg-type]
            request = adapter.chat_request(endpoint, deployment.model, chat)
        reply = await self._client.call(endpoint, request)
        if reply.status >= 400:
            raise adapter.classify_error(reply.status, reply.headers, reply.body)

    async def probe(self, name: str) -> str:
        """Probes one deployment now; returns what happened (`skipped` while its breaker is open)."""
        health = self._router.health[name]
        breaker = health.breaker
        if breaker.forced is not None or not breaker.acquire():
            return "skipped"
        started = self._router.clock()
        try:
            await asyncio.wait_for(self._call(health.deployment, self._kinds[name]), self._interval * 2 + 5)
        except (UpstreamError, TimeoutError) as error:
            error_class = getattr(error, "error_class", "timeout")
            judged: Outcome = (
                "ignored" if error_class in ("rate_limited", "bad_request", "context_window") else "failure"
            )
            breaker.record(judged, self._router.clock() - started)
            return f"failure:{error_class}"
        except asyncio.CancelledError:
            breaker.record("ignored")
            raise
        breaker.record("success", self._router.clock() - started)
        return "ok"

    async def probe_all(self) -> dict[str, str]:
        names = list(self._router.health)
        results = await asyncio.gather(*(self.probe(n) for n in names), return_exceptions=True)
        return {
            n: r if isinstance(r, str) else f"error:{type(r).__name__}" for n, r in zip(names, results, strict=True)
        }

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.probe_all()
            except Exception as exc:  # a probe must never take the gateway down
                log.warning("health probes failed (%s)", type(exc).__name__)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


def health_prober(router: Router, client: UpstreamClient) -> HealthProber | None:
    interval = router.config.health_probe_interval_s
    return HealthProber(router, client, interval) if interval else None
