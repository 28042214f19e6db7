"""The permission matrix of docs/security.md, checked cell by cell against a running gateway.

The table in the docs is the specification: this test parses it, so the page and the behaviour cannot drift
apart, and it fails when an admin endpoint of the OpenAPI document (or the docs page) has no row.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import MASTER_KEY, Proc, start_gateway

TABLE = Path(__file__).parents[2] / "docs" / "security.md"
CALLERS = ("anonymous", "inference", "viewer (team)", "viewer", "team_admin", "tenant_admin", "master")
WHERE = ("own team", "other team", "other tenant")
# the world: tenant mx-a (teams mx-a-own, where every caller lives, and mx-a-other) and tenant mx-b
TENANT = {"own team": "mx-a", "other team": "mx-a", "other tenant": "mx-b"}
TEAM = {"own team": "mx-a-own", "other team": "mx-a-other", "other tenant": "mx-b-x"}
UNTOUCHED_DEPLOYMENT = "sim/gpt-4o-mini"


@dataclass(frozen=True)
class Row:
    method: str
    path: str
    target: str
    cells: dict[str, dict[str, int | None]]  # caller -> where -> expected status (None: no such case)


def _cell(text: str) -> dict[str, int | None]:
    parts = [p.strip() for p in text.split("·")]
    if len(parts) == 1:
        parts *= 3
    assert len(parts) == 3, text
    return {where: None if p == "—" else int(p) for where, p in zip(WHERE, parts, strict=True)}


def matrix() -> list[Row]:
    lines = TABLE.read_text().split("## Permission matrix", 1)[1].splitlines()
    table = [line for line in lines if line.startswith("| `")]
    header = next(line for line in lines if line.startswith("| endpoint"))
    assert [c.strip() for c in header.strip("|").split("|")][2:] == list(CALLERS)
    rows = []
    for line in table:
        cols = [c.strip() for c in line.strip("|").split("|")]
        method, path = cols[0].strip("`").split(" ", 1)
        rows.append(Row(method, path, cols[1], {c: _cell(v) for c, v in zip(CALLERS, cols[2:], strict=True)}))
    return rows


ROWS = matrix()


class World:
    """The callers, and fresh targets made by the master key for each cell."""

    def __init__(self, gw: Proc) -> None:
        self.client = httpx.Client(base_url=gw.url, timeout=20)
        self._ids = itertools.count()
        for tenant in ("mx-a", "mx-b"):
            self.master("POST", "/admin/tenants", {"id": tenant})
        for team, tenant in (("mx-a-own", "mx-a"), ("mx-a-other", "mx-a"), ("mx-b-x", "mx-b")):
            self.master("POST", "/admin/teams", {"id": team, "tenant": tenant})
        self.keys: dict[str, str] = {"master": MASTER_KEY}
        for role in ("inference", "viewer", "team_admin", "tenant_admin"):
            self.keys[role] = self.new_key(role, "mx-a-own")["key"]
        made = self.call(self.keys["team_admin"], "POST", "/admin/keys", {"team": "mx-a-own", "role": "viewer"})
        assert made.status_code == 201, made.text
        self.keys["viewer (team)"] = made.json()["key"]

    def fresh(self, kind: str) -> str:
        return f"mx-{kind}-{next(self._ids)}"

    def call(self, key: str | None, method: str, path: str, body: Any = None, **query: str) -> httpx.Response:
        headers = {"authorization": f"Bearer {key}"} if key else {}
        return self.client.request(method, path, json=body, params=query, headers=headers)

    def master(self, method: str, path: str, body: Any = None, **query: str) -> Any:
        response = self.call(MASTER_KEY, method, path, body, **query)
        assert response.status_code in (200, 201, 204), (method, path, response.text)
        return response.json() if response.content else None

    def new_key(self, role: str, team: str, **extra: Any) -> dict[str, Any]:
        return self.master("POST", "/admin/keys", {"team": team, "role": role, **extra})  # type: ignore[no-any-return]

    def new_user(self, team: str) -> str:
        user = self.fresh("user")
        self.master("POST", "/admin/users", {"id": user, "team": team})
        return user


# target -> (world, caller, where) -> (path parameters, JSON body, query)
Request = tuple[dict[str, str], Any, dict[str, str]]
TARGETS: dict[str, Callable[[World, str, str], Request]] = {
    "a new inference key": lambda w, c, where: ({}, {"team": TEAM[where]}, {}),
    "a new viewer key": lambda w, c, where: ({}, {"team": TEAM[where], "role": "viewer"}, {}),
    "a new team_admin key": lambda w, c, where: ({}, {"team": TEAM[where], "role": "team_admin"}, {}),
    "a new tenant_admin key": lambda w, c, where: ({}, {"team": TEAM[where], "role": "tenant_admin"}, {}),
    "the keys of a team": lambda w, c, where: ({}, None, {"team": TEAM[where]}),
    "an inference key": lambda w, c, where: ({"key_id": w.new_key("inference", TEAM[where])["key_id"]}, {"rpm": 7}, {}),
    "a tenant_admin key": lambda w, c, where: (
        {"key_id": w.new_key("tenant_admin", TEAM[where])["key_id"]},
        {"rpm": 7},
        {},
    ),
    "the caller's own key": lambda w, c, where: _own_key(w, c),
    "a new tenant": lambda w, c, where: ({}, {"id": w.fresh("tenant")}, {}),
    "every tenant": lambda w, c, where: ({}, None, {}),
    "a tenant": lambda w, c, where: ({"tenant_id": _tenant(w, where)}, {"rpm": 100000}, {}),
    "a new team": lambda w, c, where: ({}, {"id": w.fresh("team"), "tenant": TENANT[where]}, {}),
    "the teams of a tenant": lambda w, c, where: ({}, None, {"tenant": TENANT[where]}),
    "a team": lambda w, c, where: ({"team_id": _team(w, where)}, {"rpm": 100000}, {}),
    "a new user": lambda w, c, where: ({}, {"id": w.fresh("user"), "team": TEAM[where]}, {}),
    "the users of a team": lambda w, c, where: ({}, None, {"team": TEAM[where]}),
    "a user": lambda w, c, where: ({"user_id": w.new_user(TEAM[where])}, {"rpm": 7}, {}),
    "a user holding a tenant_admin key": lambda w, c, where: (
        {"user_id": w.new_key("tenant_admin", TEAM[where], user=w.fresh("boss"))["user"]},
        {"rpm": 7},
        {},
    ),
    "the spend of a team": lambda w, c, where: ({}, None, {"team": TEAM[where]}),
    "the spend of a tenant": lambda w, c, where: ({}, None, {"tenant": TENANT[where]}),
    "every deployment": lambda w, c, where: ({}, None, {}),
    "the auto route's shadow report": lambda w, c, where: ({}, None, {}),
    "a deployment's breaker": lambda w, c, where: ({}, {"deployment": UNTOUCHED_DEPLOYMENT, "state": "auto"}, {}),
    "every operator action": lambda w, c, where: ({}, None, {}),
    "an operator action on a team": lambda w, c, where: (
        {},
        {"entity": f"team:{TEAM[where]}", "minutes": 1, "rpm": 1_000_000},
        {},
    ),
    "the caller itself": lambda w, c, where: ({}, None, {}),
    "every cached answer": lambda w, c, where: ({}, {"all": True}, {}),
    "the API document": lambda w, c, where: ({}, None, {}),
    "the API documentation page": lambda w, c, where: ({}, None, {}),
}


def _own_key(w: World, caller: str) -> Request:
    role = caller if caller in ("team_admin", "tenant_admin") else "team_admin"
    made = w.new_key(role, "mx-a-own")
    if caller in ("team_admin", "tenant_admin"):
        w.keys[f"own:{caller}"] = made["key"]  # the cell acts with this fresh key, on itself
    return {"key_id": made["key_id"]}, {"rpm": 7}, {}


def _tenant(w: World, where: str) -> str:
    if where == "own team":
        return "mx-a"
    tenant = w.fresh("tenant")
    w.master("POST", "/admin/tenants", {"id": tenant})
    return tenant


def _team(w: World, where: str) -> str:
    if where == "own team":
        return "mx-a-own"
    team = w.fresh("team")
    w.master("POST", "/admin/teams", {"id": team, "tenant": TENANT[where]})
    return team


@pytest.fixture(scope="module")
def world(simulator: Proc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    cache = "pipeline: {stages: [response_cache]}\nresponse_cache: {store: memory}\n"  # its admin endpoint on
    proc = start_gateway(simulator, tmp_path_factory.mktemp("matrix-gateway"), "matrix", cache)
    try:
        world = World(proc)
        yield world
        world.client.close()
    finally:
        proc.stop()


@pytest.mark.parametrize("row", ROWS, ids=[f"{r.method} {r.path} [{r.target}]" for r in ROWS])
def test_every_cell_of_the_permission_matrix(world: World, row: Row) -> None:
    make = TARGETS[row.target]
    wrong = []
    for caller, cells in row.cells.items():
        for where, expected in cells.items():
            if expected is None:
                continue
            params, body, query = make(world, caller, where)
            key = world.keys.pop(f"own:{caller}", None) or world.keys.get(caller)
            if row.method == "GET" and row.path in ("/admin/spend",):
                query = {"by": "team", **query}
            if row.method == "GET" or (row.method == "DELETE" and "limits" not in row.path):
                body = None
            elif row.method == "DELETE":
                body = {"entity": body["entity"]}
            response = world.call(key, row.method, row.path.format(**params), body, **query)
            if response.status_code != expected:
                wrong.append(f"{caller} / {where}: {response.status_code} (expected {expected}) {response.text[:160]}")
            elif response.status_code >= 400 and row.path != "/admin/docs":
                assert set(response.json()["error"]) >= {"message", "type"}, response.text
    assert not wrong, "\n".join(wrong)


def test_every_admin_endpoint_has_a_row(world: World) -> None:
    document = world.master("GET", "/admin/openapi.json")
    endpoints = {(m.upper(), p) for p, ops in document["paths"].items() for m in ops}
    endpoints.add(("GET", "/admin/docs"))
    endpoints.add(("GET", "/admin/openapi.json"))
    assert endpoints - {(r.method, r.path) for r in ROWS} == set()
    assert {(r.method, r.path) for r in ROWS} - endpoints == set()
    assert all(re.fullmatch(r"[A-Z]+", r.method) for r in ROWS)
