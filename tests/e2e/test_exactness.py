"""The money promise under faults, across instances: about 1,000 concurrent requests (half streamed, some with
`n > 1`, some with tools) from 20 keys of one team, through several gateway processes sharing one Redis (or a
3-master Redis Cluster) and one PostgreSQL reached through a TCP proxy. While they run, Redis is killed
(SIGKILL, no persistence) and started again empty, a gateway is SIGKILLed, PostgreSQL is cut and restored, and
a gateway is SIGTERMed with streams open. Afterwards the killed gateway is started again (it adopts its spool).

Asserted, and printed as a table: every answer whose head reached a client has exactly one ledger row;
no duplicated rows; the ledger's spend is over the team budget by at most the documented bound (the cost of
requests in flight when Redis lost the balances); no 402 while the spending left room; and once traffic
has stopped, a balance Redis loses is rebuilt equal to the ledger.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import httpx
import pytest

from sluicegate.providers.simulator.tcp_proxy import TcpProxy
from tests.conftest import MASTER_KEY, UPSTREAM_KEY, Proc, start_gateway
from tests.e2e.budgeted import own_simulator
from tests.state.own_redis import OwnCluster, OwnRedis
from tests.store.conftest import POSTGRES_URL, drop_schema, postgres_reachable, unique_schema

REQUESTS = 1000
KEYS = 20
CONCURRENCY = 100
# gpt-4 is counted exactly (cl100k, as the simulator counts); $30 / $300 per million tokens: a request costs
# about 0.6 m$ of prompt and 0.3 m$ per output token, so ~1,000 requests want ~$25-30; the budget runs out
# in the last third of the run, after the faults.
BUDGET_USD = "18"
BUDGET_MICROS = 18_000_000
LEAST_OUTPUT = 16  # budgets.min_output_tokens
SIMULATOR = f"""
seed: 41
api_key: {UPSTREAM_KEY}
default:
  ttft_ms: 10
  latency_ms: 10
  tokens_per_second: 1500
  output_tokens: {{min: 5, max: 150}}
"""
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "river_length",
            "description": "The length of a river in km",
            "parameters": {"type": "object", "properties": {"river": {"type": "string"}}, "required": ["river"]},
        },
    }
]


def _extra(database_port: int, schema: str, spool: Path, redis_url: str, cluster: bool) -> str:
    # reserved_wait_seconds: 1: the requests that wait for reservations at the end of a run (some held by
    # SIGKILLed requests for 15 minutes) are answered 429 sooner, which keeps the run short
    shared = (
        """
budgets:
  reserved_wait_seconds: 1
  global: {amount_usd: "100000", period: monthly}
limits:
  global: {rpm: 1000000}
  outage: {retry_seconds: 0.2}
"""
        if cluster  # requests then touch the tenant's slot and the shared one
        else """
budgets:
  reserved_wait_seconds: 1
limits:
  outage: {retry_seconds: 0.2}
"""
    )
    return f"""
  - name: gpt-4
    deployments:
      - provider: sim
        model: gpt-4
        max_output_tokens: 150
        price: {{input: 30, output: 300}}
store:
  database_url: postgresql+asyncpg://postgres@127.0.0.1:{database_port}/test
  db_schema: {schema}
  spool_dir: {spool}
  key_cache_ttl_seconds: 300
  timeout_seconds: 2
redis:
  url: {redis_url}
{shared}"""


@dataclass
class Outcome:
    n: int
    request_id: str | None = None
    status: int | None = None  # None: no answer at all (the connection failed or was dropped)
    complete: bool = False  # a whole body, or a stream that reached its end
    code: str | None = None
    message: str = ""
    started: float = 0.0
    retry_after: float = 1.0


@dataclass
class Run:
    """The processes of one run, and what the faults did."""

    simulator: Proc
    proxy: TcpProxy
    schema: str
    spool: Path
    workdir: Path
    redis_url: str
    restart_redis: Callable[[], None]
    cluster: bool
    gateways: list[Proc] = field(default_factory=list)
    live: list[Proc] = field(default_factory=list)
    redis_lost_at: list[float] = field(default_factory=list)  # wall-clock times of each loss
    events: list[str] = field(default_factory=list)

    def start_gateway(self, name: str, graceful: float = 20) -> Proc:
        folder = self.workdir / name
        folder.mkdir(exist_ok=True)
        extra = _extra(self.proxy.port, self.schema, self.spool, self.redis_url, self.cluster)
        # several start at once on a loaded machine: a generous wait for each
        gateway = start_gateway(self.simulator, folder, name, extra, graceful_seconds=graceful, timeout=60)
        self.gateways.append(gateway)
        return gateway


@contextlib.contextmanager
def _run(tmp_path: Path, simulator: Proc, cluster: bool) -> Iterator[Run]:
    if not asyncio.run(postgres_reachable()):
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is NOT reachable: the exactness suite did not run")
    proxy = TcpProxy(5432).start()
    schema = unique_schema()
    redis: OwnRedis | OwnCluster
    if cluster:
        redis = OwnCluster(tmp_path).start()
        node = _owner(redis, "{t:default}")  # the master of the team's slot loses its data

        def restart() -> None:
            node.restart()
            _wait_cluster_ok(redis)
    else:
        redis = single = OwnRedis(tmp_path).start()

        def restart() -> None:
            single.restart()

    run = Run(simulator, proxy, schema, tmp_path / "spool", tmp_path, redis.url, restart, cluster)
    try:
        yield run
    finally:
        for gateway in run.gateways:
            gateway.stop()
        if isinstance(redis, OwnCluster):
            redis.stop()
        else:
            redis.kill()
        proxy.stop()
        asyncio.run(drop_schema(schema))


def _owner(cluster: OwnCluster, key: str) -> OwnRedis:
    """The master serving `key`'s slot."""
    import redis as redis_py

    client = redis_py.Redis(port=cluster.nodes[0].port)
    try:
        slot = int(client.execute_command("CLUSTER", "KEYSLOT", key))
        for start, end, master, *_ in client.execute_command("CLUSTER", "SLOTS"):
            if int(start) <= slot <= int(end):
                port = int(master[1])
                return next(node for node in cluster.nodes if node.port == port)
    finally:
        client.close()
    raise AssertionError(f"no master serves the slot of {key}")


def _wait_cluster_ok(cluster: OwnCluster, timeout: float = 20.0) -> None:
    import redis as redis_py

    deadline = time.monotonic() + timeout
    for node in cluster.nodes:
        client = redis_py.Redis(port=node.port)
        try:
            while b"cluster_state:ok" not in client.execute_command("CLUSTER", "INFO"):
                assert time.monotonic() < deadline, "the cluster did not come back"
                time.sleep(0.05)
        finally:
            client.close()


@pytest.fixture(scope="module")
def exact_simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    proc = own_simulator(tmp_path_factory.mktemp("exact-simulator"), SIMULATOR)
    yield proc
    proc.stop()


def _body(rng: random.Random) -> tuple[dict[str, Any], int]:
    body: dict[str, Any] = {
        "model": "gpt-4",
        "messages": [{"role": "user", "content": f"Write about rivers, variant {rng.randint(0, 10**6)}."}],
    }
    n = rng.choice([2, 3]) if rng.random() < 0.15 else 1
    if n > 1:
        body["n"] = n
    if rng.random() < 0.15:
        body["tools"] = TOOLS
    if rng.random() < 0.5:
        body["max_tokens"] = rng.choice([20, 80, 1000])
    if rng.random() < 0.5:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body, n


async def _one(session: aiohttp.ClientSession, url: str, key: str, body: dict[str, Any], out: Outcome) -> None:
    out.started = time.time()
    try:
        async with session.post(
            f"{url}/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}
        ) as response:
            out.request_id = response.headers.get("x-sluice-request-id")
            out.status = response.status
            with contextlib.suppress(ValueError):
                out.retry_after = float(response.headers.get("retry-after", "1"))
            raw = await response.read()
    except (TimeoutError, aiohttp.ClientError):
        return  # the gateway died under it; whatever the head said is kept
    if out.status != 200:
        with contextlib.suppress(Exception):
            error = (await asyncio.to_thread(_json, raw))["error"]
            out.code, out.message = error.get("code"), error.get("message", "")
        out.complete = True
        return
    if body.get("stream"):
        out.complete = raw.endswith(b"data: [DONE]\n\n")
        if not out.complete and b'"error"' in raw:
            out.code = "stream_error_event"
    else:
        out.complete = raw.rstrip().endswith(b"}")


def _json(raw: bytes) -> Any:
    import orjson

    return orjson.loads(raw)


# what the SDKs retry (twice by default; a 503 a few times more here, so a client rides out a Redis Cluster
# re-forming after a master restarted, which takes seconds)
_RETRIED = {"budget_reserved", "limits_unavailable", "budgets_rebuilding", "gateway_shutting_down"}
ATTEMPTS = 5


async def _load(
    run: Run, keys: list[str], faults: Callable[[int], Awaitable[None]]
) -> tuple[list[Outcome], list[Outcome]]:
    """Every request's last answer, and every attempt (a retried request is a new request to the gateway)."""
    rng = random.Random(97)
    plans = [_body(random.Random(rng.random())) for _ in range(REQUESTS)]
    finals: list[Outcome] = [Outcome(n) for _, n in plans]
    attempts: list[Outcome] = []
    done = 0
    gate = asyncio.Semaphore(CONCURRENCY)
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:

        async def one(i: int) -> None:
            nonlocal done
            async with gate:
                for attempt in range(ATTEMPTS):
                    out = Outcome(plans[i][1])
                    attempts.append(out)
                    url = run.live[(i + attempt) % len(run.live)].url  # a load balancer: live instances only
                    await _one(session, url, keys[i % KEYS], plans[i][0], out)
                    finals[i] = out
                    if out.status is not None and out.code not in _RETRIED:
                        break
                    if out.code == "budget_reserved" and attempt >= 2:
                        break  # as the SDKs do: two retries
                    await asyncio.sleep(min(out.retry_after, 2.0) * rng.uniform(0.5, 1.0))
            done += 1
            await faults(done)

        await asyncio.gather(*(one(i) for i in range(REQUESTS)))
    return finals, attempts


def _ledger(schema: str) -> list[dict[str, Any]]:
    from sqlalchemy import text

    from sluicegate.store.db import Store

    async def read() -> list[dict[str, Any]]:
        store = Store(POSTGRES_URL, schema=schema)
        try:
            async with store.engine.connect() as conn:
                rows = await conn.execute(
                    text("SELECT request_id, team_id, cost_micros, status, outcome, ts, latency_ms FROM spend_ledger")
                )
                return [dict(row._mapping) for row in rows]
        finally:
            await store.close()

    return asyncio.run(read())


def _balance(run: Run, team: str) -> tuple[int, int]:
    from sluicegate.state.model import BudgetScope
    from sluicegate.state.periods import period_bounds
    from sluicegate.state.redis import RedisState

    async def read() -> tuple[int, int]:
        state = RedisState.from_url(run.redis_url)
        try:
            period, _ = period_bounds("monthly", time.time(), ZoneInfo("UTC"))
            scope = BudgetScope(f"team:{team}", period, BUDGET_MICROS, BUDGET_MICROS)
            status = await state.budget_status("default", scope)
            return status.spent_micros, status.reserved_micros
        finally:
            await state.close()

    return asyncio.run(read())


def _spent_in(message: str) -> int | None:
    found = re.search(r"\$([0-9.]+) spent", message)
    return int(Decimal(found.group(1)) * 1_000_000) if found else None


def _exactness_run(run: Run, instances: int) -> dict[str, Any]:
    started = time.monotonic()
    with ThreadPoolExecutor(instances) as pool:  # started together: each start is mostly waiting
        list(pool.map(lambda i: run.start_gateway(f"gw-{i}", graceful=2), range(instances)))
    run.gateways.sort(key=lambda g: g.stdout.stem)
    run.live = list(run.gateways)
    master = {"authorization": f"Bearer {MASTER_KEY}"}
    admin = httpx.Client(base_url=run.gateways[0].url, headers=master, timeout=20)
    team = "exact"
    created = admin.post("/admin/teams", json={"id": team, "budget_usd": BUDGET_USD, "budget_period": "monthly"})
    assert created.status_code == 201, created.text
    keys = [admin.post("/admin/keys", json={"team": team}).json()["key"] for _ in range(KEYS)]
    for gateway in run.gateways:  # every instance knows the keys before the store is cut
        for key in keys:
            warm = httpx.get(f"{gateway.url}/v1/models", headers={"authorization": f"Bearer {key}"}, timeout=20)
            assert warm.status_code == 200, warm.text

    killed: list[Proc] = []

    async def faults(done: int) -> None:
        if done == 150:
            run.redis_lost_at.append(time.time())
            await asyncio.to_thread(run.restart_redis)
            run.events.append(f"redis killed and restarted empty after {done} answers")
        elif done == 300 and instances > 2:
            victim = run.live.pop()
            victim.process.kill()  # SIGKILL, traffic still on it
            killed.append(victim)
            run.events.append(f"{victim.stdout.stem} SIGKILLed after {done} answers")
        elif done == 420:
            run.proxy.close()
            run.events.append(f"PostgreSQL cut after {done} answers")
            await asyncio.sleep(2.0)
            run.proxy.open()
            run.events.append("PostgreSQL back")
        elif done == 600:
            victim = run.live.pop()
            victim.process.send_signal(signal.SIGTERM)  # streams of its own still open: ended at its grace
            run.events.append(f"{victim.stdout.stem} SIGTERMed after {done} answers")

    ready_seconds = time.monotonic() - started
    outcomes, attempts = asyncio.run(_load(run, keys, faults))
    load_seconds = time.monotonic() - started - ready_seconds
    for gateway in run.gateways:
        if gateway.process.poll() is None and gateway not in run.live:
            gateway.process.wait(timeout=30)
    if killed:  # started again: it adopts the spool folders no live process holds and replays them
        run.live.append(run.start_gateway("gw-again"))

    heads = {o.request_id: o for o in attempts if o.request_id}
    deadline = time.monotonic() + 60
    while True:
        rows = _ledger(run.schema)
        ids = Counter(r["request_id"] for r in rows)
        missing = [rid for rid in heads if rid not in ids]
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    team_rows = [r for r in rows if r["team_id"] == team]
    spent = sum(r["cost_micros"] or 0 for r in team_rows)
    # the documented bound: requests in flight when Redis lost the balances may settle without a reservation
    bound = 0
    for lost in run.redis_lost_at:
        for r in team_rows:
            end = r["ts"].timestamp() if hasattr(r["ts"], "timestamp") else float(r["ts"])
            if end - (r["latency_ms"] or 0) / 1000 - 0.05 <= lost <= end + 0.05:
                bound += r["cost_micros"] or 0
    premature = [
        o
        for o in outcomes
        if o.status == 402
        and (spent_then := _spent_in(o.message)) is not None
        # its least cost: min_output_tokens per choice, and the prompt (up to 100 tokens with the tools' JSON)
        and BUDGET_MICROS - spent_then >= LEAST_OUTPUT * 300 * o.n + 100 * 30
    ]
    balance_before, held = _balance(run, team)
    # once traffic has stopped: one more loss, and the balance is rebuilt equal to the ledger
    run.restart_redis()
    time.sleep(0.5)
    probe = None
    for _ in range(50):
        probe = httpx.post(
            f"{run.live[0].url}/v1/chat/completions",
            json={"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16},
            headers={"authorization": f"Bearer {keys[0]}"},
            timeout=20,
        )
        if probe.status_code != 503:
            break
        time.sleep(0.2)
    assert probe is not None and probe.status_code in (200, 402), probe.text if probe else None
    time.sleep(0.5)
    final_rows = [r for r in _ledger(run.schema) if r["team_id"] == team]
    figures = {
        "instances": instances,
        "requests": REQUESTS,
        "attempts (with the clients' retries)": len(attempts),
        "statuses": dict(Counter(o.status for o in outcomes)),
        "answers (200, whole)": sum(o.status == 200 and o.complete for o in outcomes),
        "streams ended by an error event": sum(o.code == "stream_error_event" for o in attempts),
        "no answer (connection lost)": sum(o.status is None for o in outcomes),
        "heads without a ledger row": len(missing),
        "answers (200) without a ledger row": sum(heads[rid].status == 200 for rid in missing),
        "heads without a row, by answer": dict(Counter((heads[rid].status, heads[rid].code) for rid in missing)),
        "refusals": dict(Counter((o.status, o.code) for o in outcomes if o.status != 200)),
        "refusals retried": dict(
            Counter((o.status, o.code) for o in attempts if o.status != 200)
            - Counter((o.status, o.code) for o in outcomes if o.status != 200)
        ),
        "duplicated rows": sum(c - 1 for c in ids.values() if c > 1),
        "rows by outcome": dict(Counter(r["outcome"] for r in team_rows)),
        "ledger rows": len(rows),
        "team rows": len(final_rows),
        "budget µ$": BUDGET_MICROS,
        "spent µ$ (ledger)": spent,
        "over budget µ$": max(0, spent - BUDGET_MICROS),
        "bound µ$ (in flight at a Redis loss)": bound,
        "share of budget used": round(spent / BUDGET_MICROS, 4),
        "premature 402s": len(premature),
        "premature 402s, what they said": [(o.n, o.message[:300]) for o in premature[:3]],
        "known keys refused (auth_unavailable)": sum(o.code == "auth_unavailable" for o in attempts),
        "balance after the run µ$": balance_before,
        "over-count µ$ (balance - ledger)": balance_before - spent,
        "reserved µ$ after the run (never settled)": held,
        "share spent, over-counted or held": round((balance_before + held) / BUDGET_MICROS, 4),
        "balance rebuilt after a loss µ$": _balance(run, team)[0],
        "ledger after the probe µ$": sum(r["cost_micros"] or 0 for r in final_rows),
        "seconds (start, load, checks)": (
            round(ready_seconds, 1),
            round(load_seconds, 1),
            round(time.monotonic() - started - ready_seconds - load_seconds, 1),
        ),
        "faults": run.events,
    }
    print("\n" + "\n".join(f"  {name:<40} {value}" for name, value in figures.items()))
    return figures


_BUDGET_REFUSALS = ("budget_exceeded", "budget_reserved")


def _check(figures: dict[str, Any]) -> None:
    assert figures["heads without a ledger row"] == 0, figures
    assert figures["duplicated rows"] == 0, figures  # request_id is the table's key: replays cannot double
    # one row per request the gateways saw at most (+ the probe)
    assert figures["team rows"] <= figures["attempts (with the clients' retries)"] + 1, figures
    assert figures["over budget µ$"] <= figures["bound µ$ (in flight at a Redis loss)"], figures
    assert figures["premature 402s"] == 0, figures
    assert figures["known keys refused (auth_unavailable)"] == 0, figures
    budget_refusals = sum(n for (status, code), n in figures["refusals"].items() if code in _BUDGET_REFUSALS)
    assert budget_refusals > 0, "the budget was never reached: the run proves nothing"
    # traffic went on to the end (refusals for the budget): every micro-dollar of it is spent (in the ledger),
    # or counted twice by a balance rebuilt while answers settled (it errs high, never low), or held by the
    # reservations of requests a SIGKILL ended (they expire after budgets.reservation_ttl_seconds)
    assert figures["share spent, over-counted or held"] >= 0.99, figures
    # a balance errs high after a loss with answers settling meanwhile; it is below the ledger only by the
    # rows of requests a SIGKILL ended, which their reservations still cover ...
    covered = figures["balance after the run µ$"] + figures["reserved µ$ after the run (never settled)"]
    assert covered >= figures["spent µ$ (ledger)"], figures
    # ... and is the ledger's exactly when rebuilt with nothing in flight
    assert figures["balance rebuilt after a loss µ$"] == figures["ledger after the probe µ$"], figures


@pytest.mark.timeout(300)
def test_three_instances_on_one_redis_through_every_fault(exact_simulator: Proc, tmp_path: Path) -> None:
    with _run(tmp_path, exact_simulator, cluster=False) as run:
        _check(_exactness_run(run, instances=3))


@pytest.mark.timeout(300)
def test_two_instances_on_a_redis_cluster_through_every_fault(exact_simulator: Proc, tmp_path: Path) -> None:
    with _run(tmp_path, exact_simulator, cluster=True) as run:
        _check(_exactness_run(run, instances=2))
