"""Chaos drills: inject faults into the provider simulator behind a running gateway and measure what clients see.

Each scenario runs steady traffic against one model group, installs faults on its deployments through the
simulator's control API (`PUT /_sim/faults/{model}`), and reports the figures that matter: success rate,
time from fault to breaker open, breaker transitions, added p99 latency and upstream calls per request.
`sluicegate chaos` prints them as a table; tests/chaos asserts them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

Faults = dict[str, list[dict[str, Any]]]

# What a scenario must show: failures stay inside the gateway while a healthy deployment can serve.
SUCCESS_TARGET = 0.999
OPEN_WITHIN_S = 5.0
AMPLIFICATION_LIMIT = 1.1
MAX_TRANSITIONS = 2  # per deployment per drill: open, perhaps half-open; more is flapping
MIN_CALLS_TO_JUDGE = 20  # calls the faulted deployment must get before its breaker is expected to open


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str
    # (primary model, every model the requests may reach) -> rules per model; the models of fallback groups
    # are in the list only for a scenario that reaches them (`healthy_remains=False`: nothing must serve)
    faults: Callable[[str, list[str]], Faults]
    stream: bool = False
    healthy_remains: bool = True  # some deployment stays healthy, so clients should not notice
    opens_breaker: bool = True  # the faulty deployment's breaker should open
    visible_failures: bool = False  # failures after the first byte cannot be hidden (the stream is cut)


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "primary-outage", "the busiest deployment answers 503 to everything", lambda p, ms: {p: [{"type": "outage"}]}
    ),
    Scenario(
        "half-errors",
        "50% of the busiest deployment's calls fail with HTTP 500",
        lambda p, ms: {p: [{"type": "server_error", "probability": 0.5}]},
    ),
    Scenario(
        "latency-spike",
        "the busiest deployment becomes 10x slower",
        lambda p, ms: {p: [{"type": "slow", "factor": 10}]},
        opens_breaker=False,
    ),
    Scenario(
        "429-storm",
        "the busiest deployment answers 429 with Retry-After: 1 to everything",
        lambda p, ms: {p: [{"type": "rate_limit", "retry_after": 1}]},
        opens_breaker=False,
    ),
    Scenario(
        "malformed-stream",
        "the busiest deployment's streams carry an invalid event before the first token",
        lambda p, ms: {p: [{"type": "malformed_sse", "after_tokens": 0}]},
        stream=True,
    ),
    Scenario(
        "reset-mid-stream",
        "the busiest deployment drops the connection after 3 streamed tokens",
        lambda p, ms: {p: [{"type": "reset", "after_tokens": 3}]},
        stream=True,
        visible_failures=True,
    ),
    Scenario(
        "all-down",
        "every deployment of the group and of its fallback groups answers 503",
        lambda p, ms: {m: [{"type": "outage"}] for m in ms},
        healthy_remains=False,
    ),
)


@dataclass(slots=True)
class Sample:
    started: float
    latency: float
    ok: bool
    status: int
    clean: bool  # a failure the client could read (an error body or error event), not a hang or a broken body


@dataclass(slots=True)
class Result:
    scenario: Scenario
    primary: str
    requests: int = 0
    successes: int = 0
    clean_failures: int = 0
    unclean_failures: int = 0
    time_to_open_s: float | None = None
    transitions: int = 0  # most breaker transitions of one deployment during the drill
    transitions_per_min: float = 0.0
    baseline_p99_ms: float = 0.0
    fault_p99_ms: float = 0.0
    upstream_calls: int = 0
    faulty_calls: int = 0  # calls the faulted deployments received during the drill
    duration_s: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def success_rate(self) -> float:
        return self.successes / self.requests if self.requests else 0.0

    @property
    def amplification(self) -> float:
        return self.upstream_calls / self.requests if self.requests else 0.0

    @property
    def added_p99_ms(self) -> float:
        return self.fault_p99_ms - self.baseline_p99_ms

    @property
    def passed(self) -> bool:
        return not self.problems


def _p99(samples: list[Sample]) -> float:
    ordered = sorted(s.latency for s in samples)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000 if ordered else 0.0


class ChaosRunner:
    """Drives one gateway + simulator pair. `key` must be the gateway's master key (breaker admin)."""

    def __init__(
        self,
        gateway_url: str,
        simulator_url: str,
        key: str,
        model: str,
        *,
        concurrency: int = 8,
        warmup_s: float = 1.0,
        duration_s: float = 4.0,
        request_timeout_s: float = 15.0,
    ) -> None:
        self.gateway_url = gateway_url.rstrip("/")
        self.simulator_url = simulator_url.rstrip("/")
        self.key = key
        self.model = model
        self.concurrency = concurrency
        self.warmup_s = warmup_s
        self.duration_s = duration_s
        self.request_timeout_s = request_timeout_s

    # -- the gateway's and the simulator's views -----------------------------------------------------

    async def _deployments(self, client: httpx.AsyncClient, fallbacks: bool = False) -> list[dict[str, Any]]:
        """The group's deployments; with `fallbacks`, also those its requests may reach through fallback groups."""
        response = await client.get(
            f"{self.gateway_url}/admin/routing/deployments", headers={"authorization": f"Bearer {self.key}"}
        )
        response.raise_for_status()
        return [
            d
            for d in response.json()["deployments"]
            if self.model in d["groups"] or (fallbacks and self.model in d.get("fallback_for", ()))
        ]

    async def _reset_breakers(self, client: httpx.AsyncClient, deployments: list[dict[str, Any]]) -> None:
        for d in deployments:
            await client.put(
                f"{self.gateway_url}/admin/routing/breakers",
                json={"deployment": d["deployment"], "state": "auto"},
                headers={"authorization": f"Bearer {self.key}"},
            )

    async def _sim_requests(self, client: httpx.AsyncClient, models: list[str]) -> dict[str, int]:
        stats = (await client.get(f"{self.simulator_url}/_sim/stats")).json()["models"]
        return {m: stats.get(m, {}).get("requests", 0) for m in models}

    # -- traffic ---------------------------------------------------------------------------------------

    async def _one(self, client: httpx.AsyncClient, stream: bool) -> Sample:
        body = {"model": self.model, "messages": [{"role": "user", "content": "chaos drill"}], "stream": stream}
        started = time.monotonic()
        try:
            if not stream:
                response = await client.post(f"{self.gateway_url}/v1/chat/completions", json=body)
                ok = response.status_code == 200
                clean = ok or "error" in response.json()
                return Sample(started, time.monotonic() - started, ok, response.status_code, clean)
            async with client.stream("POST", f"{self.gateway_url}/v1/chat/completions", json=body) as response:
                if response.status_code != 200:
                    payload = await response.aread()
                    clean = "error" in orjson.loads(payload)
                    return Sample(started, time.monotonic() - started, False, response.status_code, clean)
                done = errored = False
                async for line in response.aiter_lines():
                    if line == "data: [DONE]":
                        done = True
                    elif line.startswith('data: {"error"'):
                        errored = True
                ok = done and not errored
                return Sample(started, time.monotonic() - started, ok, 200, ok or errored)
        except (httpx.HTTPError, ValueError):
            return Sample(started, time.monotonic() - started, False, 0, False)

    async def _traffic(self, client: httpx.AsyncClient, stream: bool, seconds: float) -> list[Sample]:
        deadline = time.monotonic() + seconds
        samples: list[Sample] = []

        async def worker() -> None:
            while time.monotonic() < deadline:
                samples.append(await self._one(client, stream))

        await asyncio.gather(*(worker() for _ in range(self.concurrency)))
        return samples

    async def _watch_open(
        self, client: httpx.AsyncClient, deployments: set[str], since: float, stop: asyncio.Event
    ) -> float | None:
        """Seconds from `since` until every watched deployment's breaker reported open (polled every 50 ms)."""
        while not stop.is_set():
            states = {d["deployment"]: d["breaker"]["state"] for d in await self._deployments(client)}
            if all(states.get(name) == "open" for name in deployments):
                return time.monotonic() - since
            try:
                await asyncio.wait_for(stop.wait(), 0.05)
            except TimeoutError:
                pass
        return None

    # -- one drill -------------------------------------------------------------------------------------

    async def run(self, scenario: Scenario) -> Result:
        # a drill must reach the providers: the response cache (which answers a repeated ask) neither answers
        # nor keeps its requests
        headers = {"authorization": f"Bearer {self.key}", "cache-control": "no-cache, no-store"}
        limits = httpx.Limits(max_connections=self.concurrency + 4)
        timeout = httpx.Timeout(self.request_timeout_s)
        async with (
            httpx.AsyncClient(headers=headers, limits=limits, timeout=timeout) as client,
            httpx.AsyncClient(timeout=5) as control,
        ):
            await control.delete(f"{self.simulator_url}/_sim/faults")
            deployments = await self._deployments(control)
            if not deployments:
                raise ValueError(f"the gateway has no deployments for model group '{self.model}'")
            own = [d["model"] for d in deployments]
            if not scenario.healthy_remains:  # nothing may serve: the fallback groups go down too
                deployments = await self._deployments(control, fallbacks=True)
            await self._reset_breakers(control, deployments)
            models = list(dict.fromkeys(d["model"] for d in deployments))
            before_warmup = await self._sim_requests(control, models)
            baseline = await self._traffic(client, scenario.stream, self.warmup_s)
            after_warmup = await self._sim_requests(control, models)
            primary = max(own, key=lambda m: after_warmup[m] - before_warmup[m])
            faults = scenario.faults(primary, models)
            transitions_before = {d["deployment"]: d["breaker"]["transitions"] for d in deployments}
            for model, rules in faults.items():
                installed = await control.put(f"{self.simulator_url}/_sim/faults/{model}", json={"faults": rules})
                installed.raise_for_status()
            started = time.monotonic()
            stop = asyncio.Event()
            # the breakers judged are the group's own: a fallback group's open when (and if) its turn comes
            watched = {d["deployment"] for d in deployments if d["model"] in faults and d["model"] in own}
            watcher = asyncio.create_task(self._watch_open(control, watched, started, stop))
            samples = await self._traffic(client, scenario.stream, self.duration_s)
            duration = time.monotonic() - started
            stop.set()
            time_to_open = await watcher
            after = await self._sim_requests(control, models)
            final = await self._deployments(control, fallbacks=not scenario.healthy_remains)
            await control.delete(f"{self.simulator_url}/_sim/faults")
            await self._reset_breakers(control, deployments)
        result = Result(scenario, primary, duration_s=duration, time_to_open_s=time_to_open)
        result.requests = len(samples)
        result.successes = sum(s.ok for s in samples)
        result.clean_failures = sum(1 for s in samples if not s.ok and s.clean)
        result.unclean_failures = sum(1 for s in samples if not s.ok and not s.clean)
        result.transitions = max(
            (d["breaker"]["transitions"] - transitions_before.get(d["deployment"], 0) for d in final), default=0
        )
        result.transitions_per_min = result.transitions * 60 / max(duration, 60.0)
        result.baseline_p99_ms = _p99(baseline)
        result.fault_p99_ms = _p99([s for s in samples if s.ok])
        result.upstream_calls = sum(after[m] - after_warmup[m] for m in models)
        result.faulty_calls = sum(after[m] - after_warmup[m] for m in faults if m in own)
        result.problems = self._judge(result)
        return result

    @staticmethod
    def _judge(r: Result) -> list[str]:
        s = r.scenario
        problems = []
        if r.unclean_failures:
            problems.append(f"{r.unclean_failures} failures were hangs or broken responses")
        if s.healthy_remains and not s.visible_failures and r.success_rate < SUCCESS_TARGET:
            problems.append(f"success rate {r.success_rate:.2%} < {SUCCESS_TARGET:.1%}")
        # "Under steady traffic": if routing had already moved away (too few calls to judge), there is
        # nothing for the breaker to do, and clients did not notice either.
        judged = r.faulty_calls >= MIN_CALLS_TO_JUDGE
        if s.opens_breaker and judged and (r.time_to_open_s is None or r.time_to_open_s > OPEN_WITHIN_S):
            problems.append(f"breaker open after {r.time_to_open_s} s (target <= {OPEN_WITHIN_S:g} s)")
        if r.transitions > MAX_TRANSITIONS:
            problems.append(f"{r.transitions} breaker transitions in {r.duration_s:.0f} s (flapping)")
        if s.healthy_remains and r.amplification > AMPLIFICATION_LIMIT:
            problems.append(f"{r.amplification:.2f} upstream calls per request (limit {AMPLIFICATION_LIMIT})")
        return problems


def table(results: list[Result]) -> str:
    """The figures of each drill, one row per scenario."""
    header = (
        f"{'scenario':<18} {'requests':>8} {'success':>8} {'open_s':>7} {'trans/min':>9} "
        f"{'p99_base_ms':>11} {'p99_fault_ms':>12} {'added_ms':>9} {'calls/req':>9}  verdict"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        opened = f"{r.time_to_open_s:.2f}" if r.time_to_open_s is not None else "-"
        verdict = "ok" if r.passed else "FAIL: " + "; ".join(r.problems)
        lines.append(
            f"{r.scenario.name:<18} {r.requests:>8} {r.success_rate:>8.2%} {opened:>7} {r.transitions_per_min:>9.1f} "
            f"{r.baseline_p99_ms:>11.1f} {r.fault_p99_ms:>12.1f} {r.added_p99_ms:>9.1f} {r.amplification:>9.2f}  "
            f"{verdict}"
        )
    return "\n".join(lines)


async def run_scenarios(runner: ChaosRunner, names: list[str] | None = None) -> list[Result]:
    chosen = [s for s in SCENARIOS if names is None or s.name in names]
    return [await runner.run(s) for s in chosen]
