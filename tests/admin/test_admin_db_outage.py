"""The admin API while its database is unreachable: 503 with Retry-After on every call, never a 500, and
normal answers again once the database is back. PostgreSQL sits behind a TCP proxy the test closes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from sluicegate.providers.simulator.tcp_proxy import TcpProxy
from tests.conftest import MASTER_KEY, Proc, start_gateway
from tests.store.conftest import drop_schema, postgres_reachable, unique_schema

MASTER = {"authorization": f"Bearer {MASTER_KEY}"}
CALLS: list[tuple[str, str, dict[str, object] | None]] = [
    ("GET", "/admin/keys", None),
    ("POST", "/admin/keys", {"team": "outage-team"}),
    ("GET", "/admin/keys/key_0123456789abcdef", None),
    ("PATCH", "/admin/teams/outage-team", {"rpm": 10}),
    ("POST", "/admin/tenants", {"id": "outage-tenant"}),
    ("GET", "/admin/users", None),
    ("DELETE", "/admin/users/nobody", None),
    ("GET", "/admin/spend", None),
]


@pytest.fixture
def gateway_on_a_proxied_database(
    simulator: Proc, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Proc, TcpProxy]]:
    if not asyncio.run(postgres_reachable()):
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is NOT reachable: the admin outage test did not run")
    proxy = TcpProxy(5432)
    proxy.start()
    schema = unique_schema()
    workdir = tmp_path_factory.mktemp("admin-outage")
    extra = f"""
store:
  database_url: postgresql+asyncpg://postgres@127.0.0.1:{proxy.port}/test
  db_schema: {schema}
  spool_dir: {workdir}/spool
  timeout_seconds: 2
"""
    proc = start_gateway(simulator, workdir, "outage", extra)
    try:
        yield proc, proxy
    finally:
        proc.stop()
        proxy.stop()
        asyncio.run(drop_schema(schema))


def test_admin_calls_during_a_database_outage_are_503_with_retry_after(
    gateway_on_a_proxied_database: tuple[Proc, TcpProxy],
) -> None:
    gw, proxy = gateway_on_a_proxied_database
    assert httpx.post(f"{gw.url}/admin/teams", json={"id": "outage-team"}, headers=MASTER).status_code == 201
    proxy.close()
    for method, path, body in CALLS:
        response = httpx.request(method, f"{gw.url}{path}", json=body, headers=MASTER, timeout=30)
        assert response.status_code == 503, (method, path, response.status_code, response.text)
        assert response.headers["retry-after"].isdigit()
        assert response.json()["error"]["type"] == "server_error"
    proxy.open()
    for _ in range(50):  # the pool drops its dead connections on the first use after the outage
        if httpx.get(f"{gw.url}/admin/keys", headers=MASTER, timeout=30).status_code == 200:
            break
    assert httpx.get(f"{gw.url}/admin/teams/outage-team", headers=MASTER, timeout=30).status_code == 200
    assert "Traceback" not in gw.logs()
