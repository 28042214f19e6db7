"""Smaller admin gaps: expiry in the past, rotation graces, immutable fields, operator actions on nothing,
refusals that would name another tenant's entities, the documentation behind a role and served offline,
and `keys rotate --grace` in every form an operator types."""

from __future__ import annotations

import base64
import datetime as dt
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from sluicegate.keys.cli import CommandError, grace_seconds
from tests.conftest import MASTER_KEY, Proc, start_gateway

MASTER = {"authorization": f"Bearer {MASTER_KEY}"}


@pytest.fixture(scope="module")
def gw(simulator: Proc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    proc = start_gateway(simulator, tmp_path_factory.mktemp("gaps-gateway"), "gaps")
    for tenant in ("gap-a", "gap-b"):
        httpx.post(f"{proc.url}/admin/tenants", json={"id": tenant}, headers=MASTER, timeout=10)
        httpx.post(f"{proc.url}/admin/teams", json={"id": f"{tenant}-team", "tenant": tenant}, headers=MASTER)
    yield proc
    proc.stop()


def call(gw: Proc, method: str, path: str, key: str = MASTER_KEY, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, f"{gw.url}{path}", headers={"authorization": f"Bearer {key}"}, timeout=10, **kwargs)


def test_a_key_cannot_be_created_or_set_to_expire_in_the_past(gw: Proc) -> None:
    past = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat()
    refused = call(gw, "POST", "/admin/keys", json={"team": "gap-a-team", "expires": past})
    assert refused.status_code == 400 and "past" in refused.json()["error"]["message"]
    made = call(gw, "POST", "/admin/keys", json={"team": "gap-a-team", "expires": "1.5h"}).json()
    expires = dt.datetime.fromisoformat(made["expires_at"])
    assert dt.timedelta(minutes=89) < expires - dt.datetime.now(dt.UTC) < dt.timedelta(minutes=91)
    assert call(gw, "PATCH", f"/admin/keys/{made['key_id']}", json={"expires": past}).status_code == 400


def test_a_second_rotation_never_cuts_the_first_grace_short(gw: Proc) -> None:
    made = call(gw, "POST", "/admin/keys", json={"team": "gap-a-team"}).json()
    first = call(gw, "POST", f"/admin/keys/{made['key_id']}/rotate", params={"grace_seconds": 600}).json()
    again = call(gw, "POST", f"/admin/keys/{made['key_id']}/rotate", params={"grace_seconds": 60})
    assert again.status_code == 409 and "grace_seconds=0" in again.json()["error"]["message"]
    second = call(gw, "POST", f"/admin/keys/{made['key_id']}/rotate", params={"grace_seconds": 0}).json()
    assert second["previous_valid_until"] == first["previous_valid_until"]
    for key, works in ((made["key"], True), (first["key"], False), (second["key"], True)):
        client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0)
        if works:
            client.models.list()
        else:
            with pytest.raises(openai.AuthenticationError):
                client.models.list()


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/admin/teams/gap-a-team", {"tenant": "gap-b"}, "tenant"),
        ("/admin/teams/gap-a-team", {"id": "renamed"}, "id"),
        ("/admin/tenants/gap-a", {"id": "renamed"}, "id"),
        ("/admin/users/nobody", {"team": "gap-b-team"}, "team"),
        ("/admin/keys/key_0000000000000000", {"role": "tenant_admin"}, "role"),
        ("/admin/keys/key_0000000000000000", {"team": "gap-b-team"}, "team"),
    ],
)
def test_patching_an_immutable_field_is_refused(gw: Proc, path: str, body: dict[str, str], field: str) -> None:
    response = call(gw, "PATCH", path, json=body)
    assert response.status_code == 400 and f"'{field}'" in response.json()["error"]["message"], response.text
    assert call(gw, "GET", "/admin/teams/gap-a-team").json()["tenant"] == "gap-a"


def test_an_operator_action_on_something_that_does_not_exist_is_a_404(gw: Proc) -> None:
    for entity in ("team:no-such-team", "key:key_nope", "user:nobody", "tenant:nowhere"):
        body = {"entity": entity, "minutes": 5, "rpm": 1}
        response = call(gw, "PUT", "/admin/limits/overrides", json=body)
        assert response.status_code == 404, response.text
    assert call(gw, "PUT", "/admin/limits/overrides", json={"entity": "team:gap-a-team", "minutes": 1, "rpm": 10**6})
    assert call(gw, "GET", "/admin/limits/overrides").json()["overrides"][0]["entity"] == "team:gap-a-team"


def test_refusals_do_not_reveal_another_tenant(gw: Proc) -> None:
    call(gw, "POST", "/admin/users", json={"id": "gap-b-secret-user", "team": "gap-b-team"})
    admin = call(gw, "POST", "/admin/keys", json={"team": "gap-a-team", "role": "tenant_admin"}).json()["key"]
    response = call(gw, "POST", "/admin/keys", admin, json={"team": "gap-a-team", "user": "gap-b-secret-user"})
    assert response.status_code == 400 and "gap-b-team" not in response.text
    for path in ("/admin/teams/gap-b-team", "/admin/users/gap-b-secret-user", "/admin/tenants/gap-b"):
        there, nowhere = call(gw, "GET", path, admin), call(gw, "GET", path.rsplit("/", 1)[0] + "/gap-zzz", admin)
        assert there.status_code == nowhere.status_code == 404
        assert there.json()["error"]["message"].replace("gap-b-team", "X").replace("gap-b-secret-user", "X").replace(
            "gap-b", "X"
        ) == nowhere.json()["error"]["message"].replace("gap-zzz", "X")


def test_the_docs_need_an_admin_role_and_work_offline(gw: Proc) -> None:
    anonymous = httpx.get(f"{gw.url}/admin/docs")
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"].startswith("Basic")
    inference = call(gw, "POST", "/admin/keys", json={"team": "gap-a-team"}).json()["key"]
    assert call(gw, "GET", "/admin/docs", inference).status_code == 403
    basic = base64.b64encode(f"admin:{MASTER_KEY}".encode()).decode()  # what a browser sends after its prompt
    page = httpx.get(f"{gw.url}/admin/docs", headers={"authorization": f"Basic {basic}"})
    assert page.status_code == 200 and "https://" not in page.text and "http://" not in page.text
    assert httpx.get(f"{gw.url}/admin/openapi.json", headers={"authorization": f"Basic {basic}"}).status_code == 200
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"):
        assert f"/admin/docs/assets/{asset}" in page.text
        served = httpx.get(f"{gw.url}/admin/docs/assets/{asset}")
        assert served.status_code == 200 and len(served.content) > 500
    assert "cdn" not in page.text.lower()
    assert httpx.get(f"{gw.url}/admin/docs/assets/../../etc/passwd").status_code in (401, 404)


def test_the_docs_can_be_opened_to_anyone_by_a_setting(simulator: Proc, tmp_path: Path) -> None:
    proc = start_gateway(simulator, tmp_path, "public-docs", "server:\n  admin:\n    public_docs: true\n")
    try:
        assert httpx.get(f"{proc.url}/admin/openapi.json").status_code == 200
        assert httpx.get(f"{proc.url}/admin/docs").status_code == 200
        assert httpx.get(f"{proc.url}/admin/keys").status_code == 401
    finally:
        proc.stop()


def test_rotate_grace_accepts_durations_seconds_and_times() -> None:
    now = dt.datetime(2026, 12, 2, tzinfo=dt.UTC).timestamp()
    assert grace_seconds("1.5h", now) == 5400
    assert grace_seconds("0s", now) == 0
    assert grace_seconds("90", now) == 90
    assert grace_seconds("2026-12-31T00:00:00", now) == 29 * 86400
    assert grace_seconds("2026-12-03T00:00:00+01:00", now) == 23 * 3600
    for bad in ("1.5x", "soon", "2026-11-30T00:00:00", "99999999999999d"):
        with pytest.raises(CommandError) as error:
            grace_seconds(bad, now)
        assert "\n" not in str(error.value) and "--grace" in str(error.value)


def test_rotate_with_a_bad_grace_prints_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "SLUICEGATE_DATABASE_URL": f"sqlite:///{tmp_path}/cli.db"}
    done = subprocess.run(
        [sys.executable, "-m", "sluicegate", "keys", "rotate", "key_x", "--grace", "1.5x"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=60,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "--grace" in done.stderr
