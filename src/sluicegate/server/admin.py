"""The admin API under /admin/: keys, tenants, teams, users and spend reports, documented at /admin/docs.

A thin FastAPI layer over `AdminService`, which holds every rule about who may do what. `AdminGate` sees
every request first: it authenticates the caller (so nothing about the API, not even which paths exist, is
answered without an admin role), caps the body, and shapes every error like the inference API's.
"""

import base64
import binascii
import contextlib
from dataclasses import asdict
from importlib import resources
from typing import Annotated, Any, Literal

import orjson
from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException
from starlette.types import Message, Receive, Scope, Send

from sluicegate.errors import GatewayError, payload_too_large
from sluicegate.events import AdminAction, AuthFailure
from sluicegate.keys.service import (
    MAX_GRACE_SECONDS,
    MAX_INT,
    AdminError,
    AdminService,
    KeyBody,
    KeyUpdate,
    TeamBody,
    TeamUpdate,
    TenantBody,
    TenantUpdate,
    UserBody,
    UserUpdate,
)
from sluicegate.pipeline.auth import bearer_token
from sluicegate.principal import Principal
from sluicegate.routing import admin as routing_admin
from sluicegate.server.gateway import Gateway
from sluicegate.state.overrides import OverrideError, parse_override
from sluicegate.store.models import ApiKey, Team, Tenant, User
from sluicegate.store.spend import GROUPS

_CHANGES = frozenset({"POST", "PUT", "PATCH", "DELETE"})  # the methods that change something: announced
_PRINCIPAL = "sluicegate.admin_principal"  # where the gate leaves the caller in the ASGI scope
_DOCS = ("/admin/docs", "/admin/openapi.json")
_ASSETS = "/admin/docs/assets/"
_ASSET_TYPES = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}


def _error(status: int, message: str, type_: str, code: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": type_, "param": None, "code": code}}, status)


def store_unavailable(exc: BaseException) -> bool:
    """Whether an exception means the database is away (answered 503, retry later), not a bug."""
    if isinstance(exc, OperationalError | InterfaceError | DisconnectionError | PoolTimeout | OSError | TimeoutError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def _asset(name: str) -> bytes | None:
    """Swagger UI's files, from the `swagger-ui-py` package: the docs work without the internet."""
    if name not in _ASSET_TYPES:
        return None
    with contextlib.suppress(ModuleNotFoundError, FileNotFoundError):
        return resources.files("swagger_ui").joinpath("static", name).read_bytes()
    return None


class AdminGate:
    """ASGI in front of the admin app: authentication, the body cap, and errors in the gateway's shape."""

    def __init__(self, app: FastAPI, gateway: Gateway) -> None:
        self.app = app
        self._auth = gateway.auth
        self._events = gateway.events
        admin = gateway.config.server.admin
        self._max_body = admin.max_body_bytes
        self._public_docs = admin.public_docs

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            if path.startswith(_ASSETS) and scope["method"] == "GET":
                await self._serve_asset(path[len(_ASSETS) :], send)
                return
            if not (self._public_docs and path in _DOCS):
                try:
                    scope[_PRINCIPAL] = await self._authenticate(headers, docs=path in _DOCS)
                except GatewayError as exc:
                    if exc.status in (401, 403) and self._events.listens_to(AuthFailure):
                        client = scope.get("client")
                        address = client[0] if client else None
                        self._events.publish(AuthFailure("admin", address, exc.status, exc.type))
                    raise
            body = await self._read_body(receive, headers)
        except GatewayError as exc:
            await _send_error(send, exc)
            return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        method = scope["method"]
        if method not in _CHANGES or not self._events.listens_to(AdminAction):
            await self.app(scope, replay, send)
            return
        status = 500

        async def observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, replay, observed)
        finally:
            who = scope.get(_PRINCIPAL)
            actor = who.key_id if isinstance(who, Principal) else "unknown"
            self._events.publish(AdminAction(actor, method, path, status))

    async def _authenticate(self, headers: dict[str, str], *, docs: bool) -> Principal:
        if docs:  # a browser can send a key only as a Basic password: accept it there, for the docs alone
            headers = {**headers, **_basic_as_bearer(headers)}
        if bearer_token(headers) is None:
            challenge = {"www-authenticate": 'Basic realm="sluicegate admin"'} if docs else {}
            raise GatewayError(
                401,
                "Admin API: provide the master key or an admin key.",
                type="authentication_error",
                headers=challenge,
            )
        principal = await self._auth.authenticate(headers)
        if principal.role == "inference":
            raise GatewayError(
                403, "This key is an inference key; the admin API needs an admin role.", type="permission_error"
            )
        return principal

    async def _read_body(self, receive: Receive, headers: dict[str, str]) -> bytes:
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self._max_body:
            raise payload_too_large(self._max_body)
        parts: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            part = message.get("body", b"")
            size += len(part)
            if size > self._max_body:
                raise payload_too_large(self._max_body)
            parts.append(part)
            if not message.get("more_body"):
                break
        return b"".join(parts)

    async def _serve_asset(self, name: str, send: Send) -> None:
        content = _asset(name)
        if content is None:
            raise GatewayError(404, f"Unknown path: {_ASSETS}{name}", code="not_found")
        headers = [
            (b"content-type", _ASSET_TYPES[name].encode()),
            (b"content-length", b"%d" % len(content)),
            (b"cache-control", b"public, max-age=86400"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": content})


def _basic_as_bearer(headers: dict[str, str]) -> dict[str, str]:
    scheme, _, encoded = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return {}
    try:
        password = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")[2]
    except (binascii.Error, UnicodeDecodeError):
        return {}
    return {"authorization": f"Bearer {password}"} if password else {}


async def _send_error(send: Send, exc: GatewayError) -> None:
    body = orjson.dumps({"error": {"message": exc.message, "type": exc.type, "param": None, "code": exc.code}})
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in exc.headers.items()]
    await send({"type": "http.response.start", "status": exc.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def create_admin_app(gateway: Gateway) -> AdminGate:
    app = FastAPI(
        title="Sluicegate admin API",
        version="1",
        docs_url=None,
        redoc_url=None,
        openapi_url="/admin/openapi.json",
        description="Virtual keys, tenants, teams, users and spend. Authenticate with the master key or an "
        "admin key (role tenant_admin, team_admin or viewer) as `Authorization: Bearer ...`. Who may do what "
        "is in docs/security.md.",
    )
    service: AdminService = gateway.accounts.admin
    bearer = HTTPBearer(auto_error=False, description="The master key or an admin key")

    async def actor(request: Request, _: Annotated[Any, Depends(bearer)]) -> Principal:
        principal = request.scope.get(_PRINCIPAL)
        if not isinstance(principal, Principal):  # the gate authenticates; this holds if it is bypassed
            raise GatewayError(401, "Admin API: provide the master key or an admin key.", type="authentication_error")
        return principal

    Actor = Annotated[Principal, Depends(actor)]

    async def master(who: Actor) -> Principal:
        if who.role != "master":
            raise GatewayError(403, "This endpoint needs the master key.", type="permission_error")
        return who

    Master = Annotated[Principal, Depends(master)]

    async def json_body(request: Request) -> Any:
        try:
            return orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return None  # the handlers below answer a missing or broken body with a 400 saying what they expect

    def json_response(result: Any, status: int = 200) -> Response:
        return Response(orjson.dumps(result), status, media_type="application/json")

    def with_actions(details: dict[str, Any], kind: str, entity_id: str) -> dict[str, Any]:
        """An entity's details with the operator actions in force on it (emergency limit, economy mode)."""
        actions = gateway.limits.overrides.active([f"{kind}:{entity_id}"])
        return {**details, "operator_actions": [asdict(action) for action in actions]}

    @app.exception_handler(AdminError)
    async def admin_error(_: Request, exc: AdminError) -> JSONResponse:
        kind = {403: "permission_error", 404: "not_found_error", 409: "conflict_error"}.get(exc.status)
        return _error(exc.status, exc.message, kind or "invalid_request_error")

    @app.exception_handler(GatewayError)
    async def gateway_error(_: Request, exc: GatewayError) -> JSONResponse:
        response = _error(exc.status, exc.message, exc.type, exc.code)
        response.headers.update(exc.headers)
        return response

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return _error(404, f"Unknown path: {request.url.path}", "invalid_request_error", "not_found")
        if exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}."
            return _error(405, message, "invalid_request_error", "method_not_allowed")
        return _error(exc.status_code, str(exc.detail), "invalid_request_error")

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        if store_unavailable(exc):
            response = _error(503, "The admin API's database is unavailable; retry shortly.", "server_error")
            response.headers["retry-after"] = "5"
            return response
        # Starlette re-raises after this answer; the gateway app logs it in one line, without a trace.
        return _error(500, "The admin API failed to handle this request.", "server_error", "internal_error")

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path"))
        if first.get("type") == "extra_forbidden":
            message = f"'{where}' is not a field of this request, or cannot be changed."
            return _error(400, message, "invalid_request_error")
        if first.get("type") == "missing" and not where:
            return _error(400, "This request needs a JSON body.", "invalid_request_error")
        message = str(first.get("msg", "invalid"))[:200]
        return _error(400, f"Invalid value for '{where}': {message}", "invalid_request_error")

    @app.get("/admin/docs", include_in_schema=False)
    async def docs() -> Response:
        return get_swagger_ui_html(
            openapi_url="/admin/openapi.json",
            title="Sluicegate admin API",
            swagger_js_url=f"{_ASSETS}swagger-ui-bundle.js",
            swagger_css_url=f"{_ASSETS}swagger-ui.css",
            swagger_favicon_url=f"{_ASSETS}favicon-32x32.png",
        )

    # -- keys -----------------------------------------------------------------------------------------

    @app.get("/admin/me", tags=["keys"], summary="Who the presented key is: role, tenant, team, user")
    async def me(who: Actor) -> Response:
        return json_response(
            {"key_id": who.key_id, "role": who.role, "tenant": who.tenant_id, "team": who.team_id, "user": who.user_id}
        )

    @app.post("/admin/keys", status_code=201, tags=["keys"], summary="Create a key (the secret is shown once)")
    async def create_key(body: KeyBody, who: Actor) -> dict[str, Any]:
        return await service.create_key(who, body)

    @app.get("/admin/keys", tags=["keys"])
    async def list_keys(who: Actor, team: IdQuery = None, user: IdQuery = None) -> dict[str, Any]:
        return {"keys": await service.list_keys(who, team, user)}

    @app.get("/admin/keys/{key_id}", tags=["keys"])
    async def get_key(key_id: KeyId, who: Actor) -> dict[str, Any]:
        return with_actions(await service.get_key(who, key_id), "key", key_id)

    @app.patch("/admin/keys/{key_id}", tags=["keys"])
    async def update_key(key_id: KeyId, body: KeyUpdate, who: Actor) -> dict[str, Any]:
        return await service.update_key(who, key_id, body)

    @app.post("/admin/keys/{key_id}/rotate", tags=["keys"], summary="New secret; the old one works for the grace")
    async def rotate_key(
        key_id: KeyId,
        who: Actor,
        grace_seconds: Annotated[float, Query(ge=0, le=MAX_GRACE_SECONDS, allow_inf_nan=False)] = 3600.0,
    ) -> dict[str, Any]:
        return await service.rotate_key(who, key_id, grace_seconds)

    @app.delete("/admin/keys/{key_id}", tags=["keys"], summary="Revoke a key (every instance within seconds)")
    async def revoke_key(key_id: KeyId, who: Actor) -> dict[str, Any]:
        return await service.revoke_key(who, key_id)

    # -- tenants, teams, users ------------------------------------------------------------------------

    @app.post("/admin/tenants", status_code=201, tags=["tenants"])
    async def create_tenant(body: TenantBody, who: Actor) -> dict[str, Any]:
        return await service.create_tenant(who, body)

    @app.get("/admin/tenants", tags=["tenants"])
    async def list_tenants(who: Actor) -> dict[str, Any]:
        return {"tenants": await service.list_tenants(who)}

    @app.get("/admin/tenants/{tenant_id}", tags=["tenants"])
    async def get_tenant(tenant_id: TenantId, who: Actor) -> dict[str, Any]:
        return with_actions(await service.get_tenant(who, tenant_id), "tenant", tenant_id)

    @app.patch("/admin/tenants/{tenant_id}", tags=["tenants"])
    async def update_tenant(tenant_id: TenantId, body: TenantUpdate, who: Actor) -> dict[str, Any]:
        return await service.update_tenant(who, tenant_id, body)

    @app.delete("/admin/tenants/{tenant_id}", status_code=204, tags=["tenants"])
    async def delete_tenant(tenant_id: TenantId, who: Actor) -> Response:
        await service.delete_tenant(who, tenant_id)
        return Response(status_code=204)

    @app.post("/admin/teams", status_code=201, tags=["teams"])
    async def create_team(body: TeamBody, who: Actor) -> dict[str, Any]:
        return await service.create_team(who, body)

    @app.get("/admin/teams", tags=["teams"])
    async def list_teams(who: Actor, tenant: IdQuery = None) -> dict[str, Any]:
        return {"teams": await service.list_teams(who, tenant)}

    @app.get("/admin/teams/{team_id}", tags=["teams"])
    async def get_team(team_id: TeamId, who: Actor) -> dict[str, Any]:
        return with_actions(await service.get_team(who, team_id), "team", team_id)

    @app.patch("/admin/teams/{team_id}", tags=["teams"])
    async def update_team(team_id: TeamId, body: TeamUpdate, who: Actor) -> dict[str, Any]:
        return await service.update_team(who, team_id, body)

    @app.delete("/admin/teams/{team_id}", status_code=204, tags=["teams"])
    async def delete_team(team_id: TeamId, who: Actor) -> Response:
        await service.delete_team(who, team_id)
        return Response(status_code=204)

    @app.post("/admin/users", status_code=201, tags=["users"])
    async def create_user(body: UserBody, who: Actor) -> dict[str, Any]:
        return await service.create_user(who, body)

    @app.get("/admin/users", tags=["users"])
    async def list_users(who: Actor, team: IdQuery = None) -> dict[str, Any]:
        return {"users": await service.list_users(who, team)}

    @app.get("/admin/users/{user_id}", tags=["users"])
    async def get_user(user_id: UserId, who: Actor) -> dict[str, Any]:
        return with_actions(await service.get_user(who, user_id), "user", user_id)

    @app.patch("/admin/users/{user_id}", tags=["users"])
    async def update_user(user_id: UserId, body: UserUpdate, who: Actor) -> dict[str, Any]:
        return await service.update_user(who, user_id, body)

    @app.delete("/admin/users/{user_id}", status_code=204, tags=["users"])
    async def delete_user(user_id: UserId, who: Actor) -> Response:
        await service.delete_user(who, user_id)
        return Response(status_code=204)

    # -- routing and operator actions (master key) ------------------------------------------------------

    @app.get("/admin/routing/deployments", tags=["routing"], summary="Deployments: breaker states and latency")
    async def routing_deployments(who: Master) -> Response:
        return json_response({"deployments": routing_admin.deployments_report(gateway.router)})

    @app.get(
        "/admin/routing/shadow",
        tags=["routing"],
        summary="Shadow mode of the auto route: the candidate's agreement with the live decisions and cost",
    )
    async def routing_shadow(who: Master) -> Response:
        stage = gateway.auto_route
        shadow = stage.shadow if stage is not None else None
        return json_response(shadow.report() if shadow is not None else {"enabled": False})

    @app.put(
        "/admin/routing/breakers",
        tags=["routing"],
        summary="Force a deployment's breaker open or closed, or give it back to the breaker (state: auto)",
    )
    async def routing_breaker(body: BreakerBody, who: Master) -> Response:
        return json_response(routing_admin.override_breaker(gateway.router, body.model_dump()))

    async def entity_exists(entity: str) -> bool:
        kind, _, entity_id = entity.partition(":")
        return await gateway.accounts.directory.get(_ENTITY_TABLES[kind], entity_id) is not None

    @app.get("/admin/limits/overrides", tags=["limits"], summary="Operator actions in force")
    async def limits_overrides(who: Master) -> Response:
        status, result = await gateway.limits.operator_action("GET", None)
        return json_response(result, status)

    @app.put(
        "/admin/limits/overrides",
        tags=["limits"],
        summary="Put an entity under an emergency rate limit or economy mode, with an expiry",
    )
    async def put_limits_override(body: OverrideBody, who: Master) -> Response:
        payload = body.model_dump(exclude_unset=True)
        try:
            parse_override(payload, 0.0)  # what is wrong with the action itself comes first
        except OverrideError as exc:
            raise AdminError(400, str(exc)) from None
        if not await entity_exists(body.entity):
            raise AdminError(404, f"{body.entity.replace(':', ' ', 1)} does not exist")
        status, result = await gateway.limits.operator_action("PUT", payload)
        return json_response(result, status)

    @app.delete("/admin/limits/overrides", tags=["limits"], summary="End an entity's operator action now")
    async def clear_limits_override(body: OverrideTarget, who: Master) -> Response:
        status, result = await gateway.limits.operator_action("DELETE", body.model_dump())
        return json_response(result, status)

    # -- response cache (master key) ---------------------------------------------------------------------

    @app.post(
        "/admin/response-cache/invalidate",
        tags=["response cache"],
        summary="Drop cached answers: of a namespace (a tenant: all of it), a model group, one entry, or all",
    )
    async def invalidate_response_cache(body: CacheInvalidation, who: Master) -> Response:
        cache = next((s for s in gateway.pipeline.stages if getattr(s, "name", None) == "response_cache"), None)
        if cache is None:
            raise AdminError(404, "The response cache is off (no response_cache in pipeline.stages).")
        if body.namespace is None and body.group is None and body.key is None and not body.all:
            raise AdminError(400, "Name a namespace, a group or a key, or set all: true.")
        dropped = await cache.invalidate(body.namespace, body.group, body.key)  # type: ignore[attr-defined]
        return json_response({"dropped": dropped})

    # -- spend ----------------------------------------------------------------------------------------

    @app.get(
        "/admin/spend",
        tags=["spend"],
        summary="Spend grouped by team, user, key, model, feature, day, deployment, end user, or a stage's "
        "decision (tier, task, cache, guardrail, guardrail_categories)",
    )
    async def spend(
        who: Actor,
        by: Annotated[Literal[GROUPS], Query()] = "team",  # type: ignore[valid-type]
        key_id: IdQuery = None,
        team: IdQuery = None,
        user: IdQuery = None,
        tenant: IdQuery = None,
        model: TextQuery = None,
        feature: TextQuery = None,
        since: TimeQuery = None,
        until: TimeQuery = None,
    ) -> dict[str, Any]:
        return await service.spend(
            who,
            by,
            key_id=key_id,
            team=team,
            user=user,
            tenant=tenant,
            model=model,
            feature=feature,
            since=since,
            until=until,
        )

    return AdminGate(app, gateway)


_ID = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$"
KeyId = Annotated[str, Path(pattern=_ID, max_length=64)]
TenantId = Annotated[str, Path(pattern=_ID, max_length=64)]
TeamId = Annotated[str, Path(pattern=_ID, max_length=64)]
UserId = Annotated[str, Path(pattern=_ID, max_length=64)]
IdQuery = Annotated[str | None, Query(pattern=_ID, max_length=64)]
TextQuery = Annotated[str | None, Query(max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")]
TimeQuery = Annotated[str | None, Query(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]*$")]
_ENTITY_TABLES: dict[str, type[Any]] = {"key": ApiKey, "user": User, "team": Team, "tenant": Tenant}


class BreakerBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    deployment: str = Field(min_length=1, max_length=200)
    state: Literal["open", "closed", "auto"]


class CacheInvalidation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # tenant:<id>, or tenant:<id>/team:<id> or tenant:<id>/key:<id>
    namespace: str | None = Field(None, pattern=r"^tenant:[^\x00-\x1f\x7f]{1,200}$")
    group: str | None = Field(None, min_length=1, max_length=200)
    key: str | None = Field(None, pattern=r"^[0-9a-f]{32}$")  # an entry's digest (x-sluice-cache-key)
    all: bool = False


class OverrideTarget(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entity: str = Field(pattern=r"^(key|user|team|tenant):[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


class OverrideBody(OverrideTarget):
    minutes: float = Field(gt=0, le=7 * 24 * 60, allow_inf_nan=False)
    rpm: int | None = Field(None, ge=1, le=MAX_INT)
    tpm: int | None = Field(None, ge=1, le=MAX_INT)
    economy: bool = False
    reason: str | None = Field(None, max_length=200)
