"""A `redis+sentinel://` URL: the hot state finds the primary through a real Sentinel and admits against it;
the revocation channel goes through the same primary."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from sluicegate.state.connect import parse_redis_url, pubsub_client
from sluicegate.state.model import AdmissionPlan, BudgetScope, RateScope
from sluicegate.state.redis import RedisState
from tests.conftest import free_port
from tests.state.own_redis import OwnRedis, redis_server_binary, wait_port


@pytest.fixture
def sentinel_url(tmp_path: Path) -> Iterator[str]:
    primary = OwnRedis(tmp_path).start()
    port = free_port()
    config = tmp_path / "sentinel.conf"
    config.write_text(f"port {port}\nbind 127.0.0.1\nsentinel monitor primary-one 127.0.0.1 {primary.port} 1\n")
    log = (tmp_path / "sentinel.log").open("ab")
    sentinel = subprocess.Popen([redis_server_binary(), str(config), "--sentinel"], stdout=log, stderr=log)
    try:
        wait_port(port)
        yield f"redis+sentinel://127.0.0.1:{port}/primary-one"
    finally:
        sentinel.kill()
        sentinel.wait(timeout=10)
        primary.kill()


def test_urls_name_their_kind() -> None:
    target = parse_redis_url("redis+sentinel://:secret@10.0.0.1:26379,10.0.0.2:26379/mymaster/2")
    assert (target.kind, target.nodes, target.service, target.db, target.password) == (
        "sentinel",
        (("10.0.0.1", 26379), ("10.0.0.2", 26379)),
        "mymaster",
        2,
        "secret",
    )
    cluster = parse_redis_url("rediss+cluster://10.0.0.1:7000,10.0.0.2:7001")
    assert (cluster.kind, cluster.tls, len(cluster.nodes)) == ("cluster", True, 2)
    assert parse_redis_url("redis://127.0.0.1:6379/0").kind == "single"


async def test_the_hot_state_and_pub_sub_work_through_sentinel(sentinel_url: str) -> None:
    state = RedisState.from_url(sentinel_url, timeout=2.0)
    try:
        budget = BudgetScope("key:k1", "total", 1000, 1000)
        plan = AdmissionPlan("r1", "acme", rates=(RateScope("key:k1", rpm=5),), budgets=(budget,), max_output_tokens=10)
        admission = await state.admit(plan)
        assert admission.admitted and admission.budgets[0].reserved_micros == 0
    finally:
        await state.close()
    client = pubsub_client(sentinel_url, timeout=2.0)
    try:
        assert await client.publish("sluicegate-test", b"x") == 0  # nobody listening, but it reached the primary
    finally:
        await client.aclose()
