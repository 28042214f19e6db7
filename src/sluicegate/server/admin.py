"""The admin API under /admin/: keys, tenants, teams, users and spend reports, documented at /admin/docs.

A thin FastAPI layer over `AdminService`, which holds every rule about who may do what. Errors come back
in the same `{"error": {...}}` shape as the inference API.
"""

from dataclasses import asdict
from typing import Annotated, Any

import orjson
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from sluicegate.errors import GatewayError
from sluicegate.keys.service import (
    AdminError,
    AdminService,
    KeyBody,
    KeyUpdate,
    TeamBody,
    TenantBody,
    UserBody,
    UserUpdate,
)
from sluicegate.pipeline.auth import bearer_token
from sluicegate.principal import Principal
from sluicegate.routing import admin as routing_admin
from sluicegate.server.gateway import Gateway


def _error(status: int, message: str, type_: str, code: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": type_, "param": None, "code": code}}, status)


def create_admin_app(gateway: Gateway) -> FastAPI:
    app = FastAPI(
        title="Sluicegate admin API",
        version="1",
        docs_url="/admin/docs",
        redoc_url=None,
        openapi_url="/admin/openapi.json",
        description="Virtual keys, tenants, teams, users and spend. Authenticate with the master key or an "
        "admin key (role tenant_admin, team_admin or viewer) as `Authorization: Bearer ...`.",
    )
    service: AdminService = gateway.accounts.admin

    async def actor(request: Request) -> Principal:
        if bearer_token(request.headers) is None:
            raise GatewayError(401, "Admin API: provide the master key or an admin key.", type="authentication_error")
        principal = await gateway.auth.authenticate(request.headers)
        if principal.role == "inference":
            raise AdminError(403, "This key is an inference key; the admin API needs an admin role.")
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

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        # Starlette re-raises after this answer; the gateway app logs it in one line, without a trace.
        return _error(500, "The admin API failed to handle this request.", "server_error", "internal_error")

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return _error(400, f"Invalid value for '{where}': {first.get('msg')}", "invalid_request_error")

    # -- keys -----------------------------------------------------------------------------------------

    @app.post("/admin/keys", status_code=201, tags=["keys"], summary="Create a key (the secret is shown once)")
    async def create_key(body: KeyBody, who: Actor) -> dict[str, Any]:
        return await service.create_key(who, body)

    @app.get("/admin/keys", tags=["keys"])
    async def list_keys(who: Actor, team: str | None = None, user: str | None = None) -> dict[str, Any]:
        return {"keys": await service.list_keys(who, team, user)}

    @app.get("/admin/keys/{key_id}", tags=["keys"])
    async def get_key(key_id: str, who: Actor) -> dict[str, Any]:
        return with_actions(await service.get_key(who, key_id), "key", key_id)

    @app.patch("/admin/keys/{key_id}", tags=["keys"])
    async def update_key(key_id: str, body: KeyUpdate, who: Actor) -> dict[str, Any]:
        return await service.update_key(who, key_id, body)

    @app.post("/admin/keys/{key_id}/rotate", tags=["keys"], summary="New secret; the old one works for the grace")
    async def rotate_key(
        key_id: str, who: Actor, grace_seconds: Annotated[float, Query(ge=0)] = 3600.0
    ) -> dict[str, Any]:
        return await service.rotate_key(who, key_id, grace_seconds)

    @app.delete("/admin/keys/{key_id}", tags=["keys"], summary="Revoke a key (every instance within seconds)")
    async def revoke_key(key_id: str, who: Actor) -> dict[str, Any]:
        return await service.revoke_key(who, key_id)

    # -- tenants, teams, users ------------------------------------------------------------------------

    @app.post("/admin/tenants", status_code=201, tags=["tenants"])
    async def create_tenant(body: TenantBody, who: Actor) -> dict[str, Any]:
        return await service.create_tenant(who, body)

    @app.get("/admin/tenants", tags=["tenants"])
    async def list_tenants(who: Actor) -> dict[str, Any]:
        return {"tenants": await service.list_tenants(who)}

    @app.get("/admin/tenants/{tenant_id}", tags=["tenants"])
    async def get_tenant(tenant_id: str, who: Actor) -> dict[str, Any]:
        return with_actions(await service.get_tenant(who, tenant_id), "tenant", tenant_id)

    @app.patch("/admin/tenants/{tenant_id}", tags=["tenants"])
    async def update_tenant(tenant_id: str, body: TenantBody, who: Actor) -> dict[str, Any]:
        return await service.update_tenant(who, tenant_id, body)

    @app.delete("/admin/tenants/{tenant_id}", status_code=204, tags=["tenants"])
    async def delete_tenant(tenant_id: str, who: Actor) -> Response:
        await service.delete_tenant(who, tenant_id)
        return Response(status_code=204)

    @app.post("/admin/teams", status_code=201, tags=["teams"])
    async def create_team(body: TeamBody, who: Actor) -> dict[str, Any]:
        return await service.create_team(who, body)

    @app.get("/admin/teams", tags=["teams"])
    async def list_teams(who: Actor, tenant: str | None = None) -> dict[str, Any]:
        return {"teams": await service.list_teams(who, tenant)}

    @app.get("/admin/teams/{team_id}", tags=["teams"])
    async def get_team(team_id: str, who: Actor) -> dict[str, Any]:
        return with_actions(await service.get_team(who, team_id), "team", team_id)

    @app.patch("/admin/teams/{team_id}", tags=["teams"])
    async def update_team(team_id: str, body: TeamBody, who: Actor) -> dict[str, Any]:
        return await service.update_team(who, team_id, body)

    @app.delete("/admin/teams/{team_id}", status_code=204, tags=["teams"])
    async def delete_team(team_id: str, who: Actor) -> Response:
        await service.delete_team(who, team_id)
        return Response(status_code=204)

    @app.post("/admin/users", status_code=201, tags=["users"])
    async def create_user(body: UserBody, who: Actor) -> dict[str, Any]:
        return await service.create_user(who, body)

    @app.get("/admin/users", tags=["users"])
    async def list_users(who: Actor, team: str | None = None) -> dict[str, Any]:
        return {"users": await service.list_users(who, team)}

    @app.get("/admin/users/{user_id}", tags=["users"])
    async def get_user(user_id: str, who: Actor) -> dict[str, Any]:
        return with_actions(await service.get_user(who, user_id), "user", user_id)

    @app.patch("/admin/users/{user_id}", tags=["users"])
    async def update_user(user_id: str, body: UserUpdate, who: Actor) -> dict[str, Any]:
        return await service.update_user(who, user_id, body)

    @app.delete("/admin/users/{user_id}", status_code=204, tags=["users"])
    async def delete_user(user_id: str, who: Actor) -> Response:
        await service.delete_user(who, user_id)
        return Response(status_code=204)

    # -- routing and operator actions (master key) ------------------------------------------------------

    @app.get("/admin/routing/deployments", tags=["routing"], summary="Deployments: breaker states and latency")
    async def routing_deployments(who: Master) -> Response:
        return json_response({"deployments": routing_admin.deployments_report(gateway.router)})

    @app.put(
        "/admin/routing/breakers",
        tags=["routing"],
        summary="Force a deployment's breaker open or closed, or give it back to the breaker (state: auto)",
    )
    async def routing_breaker(request: Request, who: Master) -> Response:
        return json_response(routing_admin.override_breaker(gateway.router, await json_body(request)))

    @app.api_route(
        "/admin/limits/overrides",
        methods=["GET", "PUT", "DELETE"],
        tags=["limits"],
        summary="Operator actions: emergency rate limits and economy mode, with an expiry",
    )
    async def limits_overrides(request: Request, who: Master) -> Response:
        payload = None if request.method == "GET" else await json_body(request)
        status, result = await gateway.limits.operator_action(request.method, payload)
        return json_response(result, status)

    # -- spend ----------------------------------------------------------------------------------------

    @app.get("/admin/spend", tags=["spend"], summary="Spend grouped by team, user, key, model, feature or day")
    async def spend(
        who: Actor,
        by: str = "team",
        key_id: str | None = None,
        team: str | None = None,
        user: str | None = None,
        tenant: str | None = None,
        model: str | None = None,
        feature: str | None = None,
        since: str | None = None,
        until: str | None = None,
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

    return app
