"""Virtual keys end to end: the admin API, the OpenAI SDK with a virtual key, cost headers, the spend report,
roles on every admin endpoint, the CLI both ways, and no key material in any log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from sluicegate.canonical import Usage
from sluicegate.pricing import PriceTable, micros_to_usd
from tests.conftest import MASTER_KEY, Proc, start_gateway

MASTER = {"authorization": f"Bearer {MASTER_KEY}"}


@pytest.fixture(scope="module")
def gw(simulator: Proc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    proc = start_gateway(simulator, tmp_path_factory.mktemp("keys-gateway"), "keys")
    yield proc
    proc.stop()


def create_key(gw: Proc, **body: Any) -> dict[str, Any]:
    response = httpx.post(f"{gw.url}/admin/keys", json=body, headers=MASTER, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def spend(gw: Proc, key: str = MASTER_KEY, **query: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{gw.url}/admin/spend", params=query, headers={"authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    return response.json()["rows"]  # type: ignore[no-any-return]


def wait_rows(gw: Proc, requests: int, **query: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 15
    while True:
        rows = spend(gw, **query)
        if sum(r["requests"] for r in rows) >= requests or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def test_virtual_key_end_to_end_with_costs_and_spend_report(gw: Proc) -> None:
    created = create_key(gw, team="search", user="alice", models=["gpt-4o*"], max_tokens=50, budget_usd="10")
    assert created["key"].startswith("sk-sluice-") and created["key_id"].startswith("key_")
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=created["key"], max_retries=0)
    price = PriceTable.default().lookup("gpt-4o-mini")
    assert price is not None
    expected_micros = 0
    header_total = Decimal(0)
    for n in range(3):
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": f"hello {n}"}],
            max_tokens=4000,
            extra_headers={"x-sluice-feature": "onboarding"},
        )
        completion = raw.parse()
        assert raw.headers["x-sluice-max-tokens-clamped"] == "50"
        usage = completion.usage
        assert usage is not None
        micros = price.cost_micros(Usage(input_tokens=usage.prompt_tokens, output_tokens=usage.completion_tokens))
        assert raw.headers["x-sluice-cost-usd"] == micros_to_usd(micros)
        expected_micros += micros
        header_total += Decimal(raw.headers["x-sluice-cost-usd"])

    # a stream: the final usage chunk carries the cost in a `sluicegate` extension
    with httpx.stream(
        "POST",
        f"{gw.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {created['key']}", "x-sluice-feature": "onboarding"},
        json={
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "stream please"}],
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        timeout=10,
    ) as response:
        events = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: {")]
    final = events[-1]["usage"]
    stream_micros = price.cost_micros(Usage(final["prompt_tokens"], final["completion_tokens"]))
    assert final["sluicegate"] == {"cost_usd": micros_to_usd(stream_micros)}
    expected_micros += stream_micros

    with pytest.raises(openai.PermissionDeniedError) as denied:
        client.chat.completions.create(model="text-embedding-3-small", messages=[{"role": "user", "content": "x"}])
    assert "text-embedding-3-small" in str(denied.value)

    rows = wait_rows(gw, 5, by="key", key_id=created["key_id"])
    assert rows == [
        {
            "group": created["key_id"],
            "requests": 5,  # 4 served + the refused one
            "input_tokens": rows[0]["input_tokens"],
            "output_tokens": rows[0]["output_tokens"],
            "cost_usd": micros_to_usd(expected_micros),
            "unpriced_requests": 0,
        }
    ]
    assert Decimal(rows[0]["cost_usd"]) >= header_total
    by_feature = {r["group"]: r for r in spend(gw, by="feature", key_id=created["key_id"])}
    assert by_feature["onboarding"]["requests"] == 4
    by_user = spend(gw, by="user", team="search")
    assert any(r["group"] == "alice" for r in by_user)


def test_revoked_expired_and_unknown_keys_get_401(gw: Proc) -> None:
    created = create_key(gw, team="search")
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=created["key"], max_retries=0)
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert httpx.delete(f"{gw.url}/admin/keys/{created['key_id']}", headers=MASTER).status_code == 200
    with pytest.raises(openai.AuthenticationError, match="revoked"):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    bogus = openai.OpenAI(base_url=f"{gw.url}/v1", api_key="sk-sluice-not-a-real-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bogus.models.list()


def test_rotation_keeps_the_old_key_for_the_grace(gw: Proc) -> None:
    created = create_key(gw, team="search")
    rotated = httpx.post(
        f"{gw.url}/admin/keys/{created['key_id']}/rotate", params={"grace_seconds": 60}, headers=MASTER
    ).json()
    for key in (created["key"], rotated["key"]):
        client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0)
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    now = httpx.post(f"{gw.url}/admin/keys/{created['key_id']}/rotate", params={"grace_seconds": 0}, headers=MASTER)
    assert now.status_code == 200
    stale = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=rotated["key"], max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        stale.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])


# Every admin endpoint, with a sample body; `{id}` is filled with an existing entity where it matters.
ENDPOINTS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("POST", "/admin/keys", {"team": "roles-team"}),
    ("GET", "/admin/keys", None),
    ("GET", "/admin/keys/{key}", None),
    ("PATCH", "/admin/keys/{key}", {"rpm": 5}),
    ("POST", "/admin/keys/{key}/rotate", None),
    ("DELETE", "/admin/keys/{key}", None),
    ("POST", "/admin/tenants", {"id": "t-roles"}),
    ("GET", "/admin/tenants", None),
    ("GET", "/admin/tenants/default", None),
    ("PATCH", "/admin/tenants/default", {"rpm": 5}),
    ("DELETE", "/admin/tenants/nope", None),
    ("POST", "/admin/teams", {"id": "team-roles-x"}),
    ("GET", "/admin/teams", None),
    ("GET", "/admin/teams/other-team", None),
    ("PATCH", "/admin/teams/other-team", {"rpm": 5}),
    ("DELETE", "/admin/teams/other-team", None),
    ("POST", "/admin/users", {"id": "u-roles", "team": "other-team"}),
    ("GET", "/admin/users", None),
    ("GET", "/admin/users/{user}", None),
    ("PATCH", "/admin/users/{user}", {"rpm": 5}),
    ("DELETE", "/admin/users/{user}", None),
    ("GET", "/admin/spend", None),
]

# What each role may do: (method, path) pairs allowed; everything else must be 403.
ALLOWED = {
    "viewer": {("GET", "/admin/spend")},
    "team_admin": {  # its own team's keys, users and spend; the target key and team belong to another team
        ("GET", "/admin/spend"),
        ("POST", "/admin/keys"),
        ("GET", "/admin/keys"),
        ("GET", "/admin/teams"),
        ("GET", "/admin/users"),
    },
}


def test_every_admin_endpoint_refuses_callers_without_the_role(gw: Proc) -> None:
    create_key(gw, team="other-team", user="other-user")
    target = create_key(gw, team="other-team")
    keys = {role: create_key(gw, team="roles-team", role=role)["key"] for role in ("viewer", "team_admin")}
    keys["inference"] = create_key(gw, team="roles-team")["key"]
    for method, template, body in ENDPOINTS:
        path = template.format(key=target["key_id"], user="other-user")
        anonymous = httpx.request(method, f"{gw.url}{path}", json=body)
        assert anonymous.status_code == 401, (method, path)
        assert anonymous.json()["error"]["type"] == "authentication_error"
        for role, key in keys.items():
            response = httpx.request(method, f"{gw.url}{path}", json=body, headers={"authorization": f"Bearer {key}"})
            if (method, template) in ALLOWED.get(role, set()):
                assert response.status_code in (200, 201), (role, method, path, response.text)
            else:
                assert response.status_code == 403, (role, method, path, response.status_code, response.text)
    # a team admin sees its own team's spend only
    assert spend(gw, keys["team_admin"], by="team", team="roles-team") is not None
    other = httpx.get(
        f"{gw.url}/admin/spend",
        params={"by": "team", "team": "other-team"},
        headers={"authorization": f"Bearer {keys['team_admin']}"},
    )
    assert other.status_code == 403


def test_openapi_document_lists_the_admin_api(gw: Proc) -> None:
    anonymous = httpx.get(f"{gw.url}/admin/openapi.json")
    assert anonymous.status_code == 401 and "paths" not in anonymous.text
    schema = httpx.get(f"{gw.url}/admin/openapi.json", headers=MASTER).json()
    assert {"/admin/keys", "/admin/keys/{key_id}", "/admin/spend", "/admin/teams"} <= set(schema["paths"])


def _cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sluicegate", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


def test_cli_against_the_admin_api_and_directly_on_the_store(gw: Proc, tmp_path: Path) -> None:
    env = {"SLUICEGATE_URL": gw.url, "SLUICEGATE_MASTER_KEY": MASTER_KEY}
    made = _cli("keys", "create", "--team", "cli-team", "--models", "gpt-4o*", "--json", cwd=tmp_path, env=env)
    assert made.returncode == 0, made.stderr
    created = json.loads(made.stdout)
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=created["key"], max_retries=0)
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    wait_rows(gw, 1, by="key", key_id=created["key_id"])
    listed = _cli("keys", "list", "--team", "cli-team", cwd=tmp_path, env=env)
    assert created["key_id"] in listed.stdout and created["key"] not in listed.stdout
    report = _cli("spend", "report", "--by", "team", "--team", "cli-team", "--format", "csv", cwd=tmp_path, env=env)
    assert report.stdout.splitlines()[0] == "group,requests,input_tokens,output_tokens,cost_usd,unpriced_requests"
    assert report.stdout.splitlines()[1].startswith("cli-team,1,")
    assert _cli("keys", "revoke", created["key_id"], cwd=tmp_path, env=env).returncode == 0
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])

    # without --url: straight on the store named by the environment
    local = {"SLUICEGATE_DATABASE_URL": f"sqlite:///{tmp_path}/direct.db"}
    assert _cli("db", "upgrade", cwd=tmp_path, env=local).returncode == 0
    team = _cli("teams", "create", "direct-team", "--budget-usd", "12.5", "--json", cwd=tmp_path, env=local)
    assert json.loads(team.stdout)["budget_usd"] == "12.500000"
    direct = _cli("keys", "create", "--team", "direct-team", "--json", cwd=tmp_path, env=local)
    assert json.loads(direct.stdout)["team"] == "direct-team"
    denied = _cli(
        "keys",
        "create",
        "--team",
        "x",
        cwd=tmp_path,
        env={"SLUICEGATE_URL": gw.url, "SLUICEGATE_MASTER_KEY": "sk-wrong"},
    )
    assert denied.returncode == 1 and "401" in denied.stderr


def test_no_key_material_in_logs(gw: Proc, tmp_path: Path) -> None:
    created = create_key(gw, team="log-team")
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=created["key"], max_retries=0)
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{gw.url}/v1", api_key=created["key"] + "x", max_retries=0).models.list()
    time.sleep(0.3)
    access_log = Path(str(gw.stdout).replace(".out", "-access.log"))
    spool = "".join(p.read_text() for p in (gw.stdout.parent / ".sluicegate" / "spool").rglob("*.jsonl"))
    everything = gw.logs() + access_log.read_text() + spool
    secret = created["key"][len("sk-sluice-") :]
    assert secret not in everything and secret[:16] not in everything
    assert MASTER_KEY not in everything


def test_models_list_shows_only_what_the_key_may_use(gw: Proc) -> None:
    created = create_key(gw, team="search", models=["gpt-4o*"])
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=created["key"], max_retries=0)
    assert [m.id for m in client.models.list()] == ["gpt-4o-mini"]
    everything = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=MASTER_KEY, max_retries=0)
    assert len(everything.models.list().data) > 1
