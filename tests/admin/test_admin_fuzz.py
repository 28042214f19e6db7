"""The admin API under hostile input: schemathesis over /admin/openapi.json (fixed seed and budget), and every
input that once made it answer 500, kept as a regression test. Zero 5xx, errors always in the gateway's shape.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import seed as hypothesis_seed
from schemathesis.checks import not_a_server_error

from tests.conftest import MASTER_KEY, Proc, start_gateway

MASTER = {"authorization": f"Bearer {MASTER_KEY}"}
EXAMPLES_PER_OPERATION = 12  # x 26 operations: about a minute on a busy machine


@pytest.fixture(scope="module")
def fuzz_gateway(simulator: Proc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    proc = start_gateway(simulator, tmp_path_factory.mktemp("fuzz-gateway"), "fuzz")
    # some entities for the fuzzer's requests to find
    httpx.post(f"{proc.url}/admin/tenants", json={"id": "fz"}, headers=MASTER, timeout=10)
    httpx.post(f"{proc.url}/admin/teams", json={"id": "fz-team", "tenant": "fz"}, headers=MASTER, timeout=10)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def admin_schema(fuzz_gateway: Proc) -> Any:
    document = httpx.get(f"{fuzz_gateway.url}/admin/openapi.json", headers=MASTER, timeout=10).json()
    return schemathesis.openapi.from_dict(document)


schema = schemathesis.pytest.from_fixture("admin_schema")


def error_shape(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every refusal is `{"error": {"message": ..., "type": ...}}`, never FastAPI's `{"detail": ...}`."""
    if response.status_code >= 400:
        error = response.json().get("error")
        assert isinstance(error, dict) and {"message", "type"} <= set(error), response.text[:300]
    return None


@pytest.mark.timeout(600)  # one test item for every operation: a minute or two on a busy machine
@schema.parametrize()
@hypothesis_seed(20261202)
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_schemathesis_finds_no_server_error(case: Any, fuzz_gateway: Proc) -> None:
    case.call_and_validate(
        base_url=fuzz_gateway.url, headers=MASTER, checks=[not_a_server_error, error_shape], timeout=20
    )


# Inputs that answered 500 before the schema had bounds: (method, path, JSON body or None, query).
REGRESSIONS: list[tuple[str, str, Any, dict[str, str]]] = [
    ("POST", "/admin/keys", {"team": "fz-team", "budget_usd": 1e30}, {}),
    ("POST", "/admin/keys", {"team": "fz-team", "rpm": 2**63}, {}),
    ("POST", "/admin/keys", {"team": "fz-team", "tpm": 2**31}, {}),  # overflows PostgreSQL's integer
    ("POST", "/admin/keys", {"team": "fz-team", "max_tokens": -1}, {}),
    ("POST", "/admin/keys", {"team": "fz-team", "budget_usd": "NaN"}, {}),
    ("POST", "/admin/keys", {"team": "fz-team", "expires": "99999999999999d"}, {}),
    ("POST", "/admin/keys", {"team": "fz-team", "expires": "9999999d"}, {}),
    ("POST", "/admin/keys", {"team": "fz-team", "expires": "0001-01-01T00:00:00+14:00"}, {}),
    ("POST", "/admin/keys", {"team": "fz-team", "name": "nul\u0000byte"}, {}),
    ("POST", "/admin/keys", {"team": "fz-team", "name": "\ud800"}, {}),
    ("POST", "/admin/keys", {"team": "fz-team", "models": ["x" * 10_000]}, {}),
    ("POST", "/admin/keys", {"team": "fz-team", "metadata": {"k": "v" * 10_000}}, {}),
    ("POST", "/admin/keys", {"team": "fz-team", "guardrail_level": "x" * 100}, {}),
    ("POST", "/admin/teams", {"id": "fz-t2", "tenant": "nul\u0000"}, {}),
    ("POST", "/admin/users", {"id": "fz-u", "team": "\u0000"}, {}),
    ("POST", "/admin/tenants", {"id": "fz-x", "name": "n" * 1000}, {}),
    ("PATCH", "/admin/teams/fz-team", {"rpm": 2**63}, {}),
    ("PATCH", "/admin/tenants/fz", {"budget_usd": 1e30}, {}),
    ("GET", "/admin/spend", None, {"since": "99999999999999d"}),
    ("GET", "/admin/spend", None, {"until": "99999999999999d"}),
    ("GET", "/admin/spend", None, {"model": "a\u0000b"}),
    ("GET", "/admin/spend", None, {"by": "nonsense"}),
    ("GET", "/admin/keys", None, {"team": "\u0000"}),
    ("GET", "/admin/keys/a%00b", None, {}),
    ("PUT", "/admin/limits/overrides", {"entity": "team:fz-team", "minutes": 1, "rpm": 2**70}, {}),
    ("PUT", "/admin/limits/overrides", {"entity": "team:fz-team", "minutes": 1e308, "rpm": 1}, {}),
    ("PUT", "/admin/routing/breakers", {"deployment": None, "state": "open"}, {}),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "query"), REGRESSIONS, ids=[f"{r[0]} {r[1]} {r[2] or r[3]}"[:90] for r in REGRESSIONS]
)
def test_hostile_admin_input_is_a_400(
    fuzz_gateway: Proc, method: str, path: str, body: Any, query: dict[str, str]
) -> None:
    content = None if body is None else json.dumps(body).encode()  # ASCII: a lone surrogate goes as \ud800
    response = httpx.request(
        method,
        f"{fuzz_gateway.url}{path}",
        content=content,
        params=query,
        headers={**MASTER, "content-type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_patch_with_null_for_a_required_field_is_a_400(fuzz_gateway: Proc) -> None:
    made = httpx.post(f"{fuzz_gateway.url}/admin/keys", json={"team": "fz-team"}, headers=MASTER, timeout=10).json()
    for field in ("enabled", "models", "metadata"):
        response = httpx.patch(
            f"{fuzz_gateway.url}/admin/keys/{made['key_id']}", json={field: None}, headers=MASTER, timeout=10
        )
        assert response.status_code == 400 and field in response.json()["error"]["message"], response.text


@pytest.mark.parametrize("grace", ["inf", "nan", "1e12", "-1"])
def test_rotation_grace_out_of_range_is_a_400(fuzz_gateway: Proc, grace: str) -> None:
    made = httpx.post(f"{fuzz_gateway.url}/admin/keys", json={"team": "fz-team"}, headers=MASTER, timeout=10).json()
    response = httpx.post(
        f"{fuzz_gateway.url}/admin/keys/{made['key_id']}/rotate", params={"grace_seconds": grace}, headers=MASTER
    )
    assert response.status_code == 400, response.text


def test_a_huge_admin_body_is_refused_without_reading_it(fuzz_gateway: Proc) -> None:
    big = b'{"team": "fz-team", "name": "' + b"x" * (60 * 1024 * 1024) + b'"}'
    response = httpx.post(
        f"{fuzz_gateway.url}/admin/keys", content=big, headers={**MASTER, "content-type": "application/json"}
    )
    assert response.status_code == 413 and response.json()["error"]["code"] == "request_too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: the cap holds on the bytes actually read
        yield b'{"team": "fz-team", "name": "'
        for _ in range(200):
            yield b"x" * 65536
        yield b'"}'

    response = httpx.post(
        f"{fuzz_gateway.url}/admin/keys", content=chunks(), headers={**MASTER, "content-type": "application/json"}
    )
    assert response.status_code == 413


def test_unknown_admin_paths_answer_in_the_error_shape(fuzz_gateway: Proc) -> None:
    for method, path, status in (
        ("GET", "/admin/nope", 404),
        ("POST", "/admin/spend", 405),
        ("GET", "/admin/keys/x/y/z", 404),
    ):
        response = httpx.request(method, f"{fuzz_gateway.url}{path}", headers=MASTER)
        assert response.status_code == status and "detail" not in response.json(), response.text
        assert response.json()["error"]["type"] == "invalid_request_error"
    anonymous = httpx.get(f"{fuzz_gateway.url}/admin/nope")
    assert anonymous.status_code == 401 and anonymous.json()["error"]["type"] == "authentication_error"


def test_the_openapi_document_states_the_bounds(fuzz_gateway: Proc) -> None:
    document = httpx.get(f"{fuzz_gateway.url}/admin/openapi.json", headers=MASTER).json()
    key = document["components"]["schemas"]["KeyBody"]["properties"]
    rpm = next(s for s in key["rpm"]["anyOf"] if s.get("type") == "integer")
    assert (rpm["minimum"], rpm["maximum"]) == (1, 2**31 - 1)
    assert "maxLength" in next(s for s in key["name"]["anyOf"] if s.get("type") == "string")
    rotate = document["paths"]["/admin/keys/{key_id}/rotate"]["post"]["parameters"]
    grace = next(p for p in rotate if p["name"] == "grace_seconds")["schema"]
    assert grace["maximum"] == 90 * 86400


@pytest.mark.parametrize(
    "content",
    [b"[" * 30_000 + b"]" * 30_000, b'{"team": ' * 6_000, b"[]", b'"x"', b"\xff\xfe", b'{"team": "fz-team"'],
    ids=["deep", "deep-unclosed", "array", "string", "not-utf8", "truncated"],
)
def test_a_body_that_is_not_the_expected_object_is_a_400(fuzz_gateway: Proc, content: bytes) -> None:
    response = httpx.post(
        f"{fuzz_gateway.url}/admin/keys", content=content, headers={**MASTER, "content-type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["type"] == "invalid_request_error"
