"""The HTTP surface: a small ASGI application that hands each request to the pipeline.

It is written against ASGI directly, not a framework, because the proxy path is the product's hot path
and every framework layer measured here cost throughput (docs/performance.md).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import logging
import secrets
from collections.abc import Awaitable, Callable
from fnmatch import fnmatchcase
from typing import Any

import orjson

from sluicegate.canonical import ChatChunk, ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse, TokenCount
from sluicegate.errors import (
    GatewayError,
    bad_request,
    body_incomplete,
    model_not_found,
    not_found,
    payload_too_large,
    scrub,
)
from sluicegate.pipeline.context import Endpoint, RequestContext
from sluicegate.pipeline.runner import Answer
from sluicegate.pricing import micros_to_usd
from sluicegate.routing import admin as routing_admin
from sluicegate.server.admin import create_admin_app
from sluicegate.server.gateway import Gateway
from sluicegate.server.ui import Dashboard
from sluicegate.wire import ClientWire, StreamEncoder
from sluicegate.wire import anthropic as anthropic_wire
from sluicegate.wire import openai as openai_wire
from sluicegate.wire import responses as responses_wire

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

log = logging.getLogger("sluicegate.server")

_JSON = (b"content-type", b"application/json")
_MODEL_PATHS = ("/v1/models/", "/models/")  # followed by a model name, which may itself hold a slash
_RESPONSE_PATHS = ("/v1/responses/", "/responses/")  # a stored response by id: the gateway keeps none
_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


def _no_response(response_id: str, param: str | None, why: str = "") -> GatewayError:
    reason = why or "it does not exist, has expired, or belongs to another tenant"
    return GatewayError(
        404, f"No response with id '{response_id[:80]}' is stored: {reason}.", code="response_not_found", param=param
    )


class RequestIds:
    """Unique request ids without a system call each: a random per-process prefix and a counter.

    (os.urandom per request showed up in profiles; ids need uniqueness, the ledger's idempotency key, not
    unpredictability.)"""

    def __init__(self, prefix: str | None = None) -> None:
        self._prefix = prefix or "req_" + secrets.token_hex(6)
        self._counter = itertools.count(1)

    def __call__(self) -> str:
        return f"{self._prefix}{next(self._counter):012x}"


def _headers(scope: Scope) -> dict[str, str]:
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}


async def _read_body(receive: Receive, headers: dict[str, str], limit: int) -> bytes:
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise payload_too_large(limit)
    message = await receive()
    if message["type"] == "http.disconnect":  # the client left, or its body missed its deadline (408)
        raise body_incomplete()
    body: bytes = message.get("body", b"")
    if not message.get("more_body"):
        if len(body) > limit:
            raise payload_too_large(limit)
        return body
    parts = [body]
    size = len(body)
    while message.get("more_body"):
        message = await receive()
        if message["type"] == "http.disconnect":
            raise body_incomplete()
        part = message.get("body", b"")
        size += len(part)
        if size > limit:
            raise payload_too_large(limit)
        parts.append(part)
    return b"".join(parts)


def _encode_headers(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


async def _send(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    """A whole response, framed by its length (not chunked): simpler for clients and one write less to frame."""
    headers.append((b"content-length", b"%d" % len(body)))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _usage_extension(ctx: RequestContext) -> dict[str, Any] | None:
    """The `sluicegate` extension of a stream's usage: its cost and any note (e.g. a cut-off)."""
    extension: dict[str, Any] = {}
    if ctx.cost_micros is not None:
        extension["cost_usd"] = micros_to_usd(ctx.cost_micros)
    if ctx.usage_extension:
        extension.update(ctx.usage_extension)
    return extension or None


def _response_headers(
    ctx: RequestContext, base: list[tuple[bytes, bytes]] | None = None, error: GatewayError | None = None
) -> list[tuple[bytes, bytes]]:
    headers = list(base) if base is not None else [_JSON]
    headers.append((b"x-sluice-request-id", ctx.request_id.encode()))
    if ctx.trace_id is not None:
        headers.append((b"x-sluice-trace-id", ctx.trace_id.encode()))
    if error is None:
        if ctx.cost_micros is not None:
            headers.append((b"x-sluice-cost-usd", micros_to_usd(ctx.cost_micros).encode()))
        if ctx.deployment is not None:
            headers.append((b"x-sluice-deployment", ctx.deployment.name.encode("latin-1")))
            headers.append((b"x-sluice-attempts", str(ctx.attempts).encode()))
    elif ctx.attempts and ctx.deployment is not None:  # the last deployment tried, and how many calls
        headers.append((b"x-sluice-deployment", ctx.deployment.name.encode("latin-1")))
        headers.append((b"x-sluice-attempts", str(ctx.attempts).encode()))
    if ctx.route_reason:
        headers.append((b"x-sluice-route-reason", ctx.route_reason.encode("latin-1", "replace")))
    if error is not None:
        headers.extend(_encode_headers(error.headers))
    elif ctx.response_headers:
        headers.extend(_encode_headers(ctx.response_headers))
    return headers


class _Exchange:
    """The reply sink of one request (`pipeline.Reply`): the client's wire format, the ASGI send, and the
    watch for a client that leaves in the middle of a stream."""

    __slots__ = ("_disconnected", "_done", "_encoder", "_receive", "_send", "_task", "_watcher", "_wire")

    def __init__(self, wire: ClientWire, receive: Receive, send: Send) -> None:
        self._wire = wire
        self._receive = receive
        self._send = send
        self._encoder: StreamEncoder | None = None
        self._task: asyncio.Task[Any] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._done = False
        self._disconnected = False

    def encode(self, ctx: RequestContext, answer: Answer) -> bytes:
        if type(answer) is ChatResponse:
            return self._wire.chat_response_body(answer, ctx.usage_extension)  # e.g. max_tokens lowered to fit
        if type(answer) is EmbeddingResponse:
            return openai_wire.embedding_response_body(answer)
        assert isinstance(answer, TokenCount)
        return orjson.dumps({"input_tokens": answer.input_tokens})

    def encode_error(self, ctx: RequestContext, error: GatewayError) -> bytes:
        return self._wire.error_body(error)

    async def send(self, ctx: RequestContext, status: int, body: bytes, error: GatewayError | None = None) -> None:
        await _send(self._send, status, body, _response_headers(ctx, None, error))

    def _make_encoder(self, ctx: RequestContext) -> StreamEncoder:
        ticket = ctx.admission
        return self._wire.stream_encoder(ctx.chat, ticket.prompt_tokens if ticket is not None else None)

    async def open_stream(self, ctx: RequestContext) -> None:
        self._encoder = self._make_encoder(ctx)
        headers = _response_headers(ctx, _SSE_HEADERS)
        await self._send({"type": "http.response.start", "status": 200, "headers": headers})
        self._task = asyncio.current_task()
        self._watcher = asyncio.get_running_loop().create_task(self._watch_disconnect())

    async def _watch_disconnect(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass
        if not self._done and self._task is not None:
            self._disconnected = True
            self._task.cancel()

    async def send_chunks(self, ctx: RequestContext, batch: list[ChatChunk]) -> None:
        encoder = self._encoder
        assert encoder is not None
        parts = []
        for chunk in batch:
            data = encoder.encode(chunk, _usage_extension(ctx) if chunk.usage is not None else None)
            if data:
                parts.append(data)
        if parts:  # one write for what arrived together: fewer syscalls, same order and timing
            await self._send({"type": "http.response.body", "body": b"".join(parts), "more_body": True})

    def end_stream(self, ctx: RequestContext, error: GatewayError | None = None) -> bytes:
        self._done = True
        encoder = self._encoder
        assert encoder is not None
        return encoder.finish() if error is None else encoder.error(error)

    async def send_last(self, data: bytes) -> None:
        await self._send({"type": "http.response.body", "body": data})

    def client_left(self) -> bool:
        if not self._disconnected or self._task is None:
            return False
        self._task.uncancel()
        return True

    def close(self) -> None:
        self._done = True
        if self._watcher is not None:
            self._watcher.cancel()


Keeper = Callable[[dict[str, Any]], Awaitable[None]]


class _ResponsesExchange(_Exchange):
    """The Responses API's sink: response ids made from the gateway's request id; with `keep`, the final
    response is stored before the client receives its end, so a `previous_response_id` sent the moment the
    answer arrives finds it."""

    __slots__ = ("_keep", "final")

    def __init__(self, wire: ClientWire, receive: Receive, send: Send, keep: Keeper | None) -> None:
        super().__init__(wire, receive, send)
        self._keep = keep
        self.final: dict[str, Any] | None = None

    @property
    def _stored(self) -> bool:
        return self._keep is not None

    async def send(self, ctx: RequestContext, status: int, body: bytes, error: GatewayError | None = None) -> None:
        if error is None and status == 200 and self.final is not None:
            await self._store(self.final)
        await super().send(ctx, status, body, error)

    async def send_last(self, data: bytes) -> None:
        final = self.result()
        if final is not None and final.get("status") != "failed":
            await self._store(final)
        await super().send_last(data)

    async def _store(self, final: dict[str, Any]) -> None:
        if self._keep is None:
            return
        try:
            await self._keep(final)
        except Exception as exc:  # the answer still goes out; a later previous_response_id will say 404
            log.error("stored response %s not kept: %s: %s", final.get("id"), type(exc).__name__, scrub(str(exc)))

    def encode(self, ctx: RequestContext, answer: Answer) -> bytes:
        if type(answer) is not ChatResponse:
            return super().encode(ctx, answer)
        self.final = responses_wire.response_dict(answer, ctx.usage_extension, _stem(ctx), self._stored)
        return orjson.dumps(self.final)

    def _make_encoder(self, ctx: RequestContext) -> StreamEncoder:
        return responses_wire.ResponsesStreamEncoder(ctx.chat, _stem(ctx), self._stored)

    def result(self) -> dict[str, Any] | None:
        encoder = self._encoder
        if isinstance(encoder, responses_wire.ResponsesStreamEncoder):
            return encoder.final
        return self.final


def _stem(ctx: RequestContext) -> str:
    return ctx.request_id.removeprefix("req_")


class GatewayApp:
    """The ASGI callable. Routes by exact path; everything else is a 404 in OpenAI's error shape."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self._max_body = gateway.config.server.max_body_bytes
        self._request_id = RequestIds(gateway.request_id_prefix)  # the ledger knows it (streams of a dead process)
        openai: ClientWire = openai_wire.OpenAIWire()
        self._openai = openai
        self._anthropic: ClientWire = anthropic_wire.AnthropicWire()
        self._responses_wire: ClientWire = responses_wire.ResponsesWire()
        self._routes: dict[tuple[str, str], Callable[[Scope, Receive, Send], Awaitable[None]]] = {}
        for prefix in ("/v1", ""):
            self._routes[("POST", f"{prefix}/chat/completions")] = self._chat_handler(openai)
            self._routes[("POST", f"{prefix}/embeddings")] = self._embeddings
            self._routes[("GET", f"{prefix}/models")] = self._models
            self._routes[("POST", f"{prefix}/responses")] = self._responses
        self._routes[("POST", "/v1/messages")] = self._chat_handler(self._anthropic)
        self._routes[("POST", "/v1/messages/count_tokens")] = self._count_tokens
        self._routes[("GET", "/health/live")] = self._live
        self._routes[("GET", "/health/ready")] = self._ready
        self._routes[("GET", "/metrics")] = self._metrics
        self._admin = create_admin_app(gateway)
        self._dashboard = Dashboard()
        # with several worker processes: this worker's exposition merged with its peers' (`workers.py`)
        self.gather_metrics: Callable[[bytes], Awaitable[bytes]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            handler = self._routes.get((scope["method"], scope["path"]))
            if handler is None and scope["method"] == "GET" and scope["path"].startswith(_MODEL_PATHS):
                handler = self._model
            if handler is None and scope["path"].startswith(_RESPONSE_PATHS):
                handler = self._stored_response
            if handler is None:
                if self._dashboard.handles(scope["path"]):
                    await self._dashboard(scope, send)
                    return
                if scope["path"].startswith("/admin"):
                    try:
                        await self._admin(scope, receive, send)  # type: ignore[arg-type]
                    except Exception as exc:  # already answered as a 500; logged once, never with a trace
                        log.error(
                            "admin API error path=%s error=%s: %s", scope["path"], type(exc).__name__, scrub(str(exc))
                        )
                    return
                error = not_found(scope["path"])
                await _send(send, 404, openai_wire.error_body(error), [_JSON])
                return
            await handler(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.gateway.start()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": scrub(str(exc))})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.gateway.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- inference -----------------------------------------------------------------------------------

    def _chat_handler(self, wire: ClientWire) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
        async def handle(scope: Scope, receive: Receive, send: Send) -> None:
            await self._exchange(scope, receive, send, "chat", wire, wire.parse_chat_request)

        return handle

    async def _embeddings(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._exchange(scope, receive, send, "embeddings", self._openai, openai_wire.parse_embedding_request)

    async def _count_tokens(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Anthropic's token counting: authenticated, answered by the gateway's own counter, no upstream call."""
        await self._exchange(
            scope, receive, send, "count_tokens", self._anthropic, anthropic_wire.parse_count_tokens_request
        )

    async def _exchange(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        endpoint: Endpoint,
        wire: ClientWire,
        parse: Callable[[bytes], ChatRequest | EmbeddingRequest],
    ) -> None:
        """Parses the request and hands it to the pipeline with a sink that answers in the client's format."""
        headers = _headers(scope)
        client = scope.get("client")
        ctx = RequestContext(self._request_id(), endpoint, wire.name, headers, None, client[0] if client else None)
        reply = _Exchange(wire, receive, send)
        pipeline = self.gateway.token_counting if endpoint == "count_tokens" else self.gateway.pipeline
        try:
            ctx.request = parse(await _read_body(receive, headers, self._max_body))
        except GatewayError as error:
            await pipeline.refuse(ctx, reply, error)
            return
        await pipeline.handle(ctx, reply)

    async def _responses(self, scope: Scope, receive: Receive, send: Send) -> None:
        """`POST /v1/responses`: a chat exchange in the Responses format; with stored responses configured, the
        conversation of `previous_response_id` goes in front of `input`, and the answer is kept after it left."""
        headers = _headers(scope)
        client = scope.get("client")
        ctx = RequestContext(self._request_id(), "chat", "responses", headers, None, client[0] if client else None)
        store = self.gateway.responses
        pipeline = self.gateway.pipeline
        tenant = "default"
        keep = False
        items: list[dict[str, Any]] = []
        try:
            data = responses_wire.load_body(await _read_body(receive, headers, self._max_body))
            if store is not None:
                keep = data.get("store") is not False
                if keep or data.get("previous_response_id") is not None:
                    tenant = await self._tenant(headers)
                items = responses_wire.input_items(data.get("input"))
                previous = data.pop("previous_response_id", None)
                if previous is not None:
                    if not isinstance(previous, str):
                        raise bad_request(
                            "Invalid type for 'previous_response_id': expected a string.", "previous_response_id"
                        )
                    kept = await store.get(tenant, previous, self._now())
                    if kept is None:
                        raise _no_response(previous, "previous_response_id")
                    data["input"] = kept.items + items
            ctx.request = responses_wire.responses_request(data)
        except GatewayError as error:
            await pipeline.refuse(ctx, _ResponsesExchange(self._responses_wire, receive, send, None), error)
            return
        keeper: Keeper | None = None
        if store is not None and keep:
            history = data["input"] if isinstance(data["input"], list) else items

            async def keeper(final: dict[str, Any]) -> None:
                await store.put(tenant, final, [*history, *final["output"]], items, self._now())

        await pipeline.handle(ctx, _ResponsesExchange(self._responses_wire, receive, send, keeper))

    async def _tenant(self, headers: dict[str, str]) -> str:
        """The caller's tenant (stored responses are per tenant); authentication errors reach the client."""
        principal = await self.gateway.auth.authenticate(headers)
        return principal.tenant_id or "default"

    def _now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.gateway.clock.now(), dt.UTC)

    # -- operations ----------------------------------------------------------------------------------

    async def _visible_models(self, scope: Scope, send: Send) -> list[tuple[str, str]] | None:
        """The models the request's key may see, or None once an authentication error has been answered."""
        try:
            principal = await self.gateway.auth.authenticate(_headers(scope))
        except GatewayError as error:
            await _send(send, error.status, openai_wire.error_body(error), [_JSON])
            return None
        models = self.gateway.models()
        if principal.allowed_models:  # a key sees only the models it may use
            models = [m for m in models if any(fnmatchcase(m[0], p) for p in principal.allowed_models)]
        return models

    async def _models(self, scope: Scope, receive: Receive, send: Send) -> None:
        models = await self._visible_models(scope, send)
        if models is not None:
            await _send(send, 200, openai_wire.models_body(models), [_JSON])

    async def _model(self, scope: Scope, receive: Receive, send: Send) -> None:
        """`GET /v1/models/{id}` (the SDKs' `models.retrieve`); a model the key may not see does not exist."""
        models = await self._visible_models(scope, send)
        if models is None:
            return
        name = scope["path"].split("/models/", 1)[1]
        owner = next((owner for model, owner in models if model == name), None)
        if owner is None:
            await _send(send, 404, openai_wire.error_body(model_not_found(name)), [_JSON])
        else:
            await _send(send, 200, openai_wire.model_body(name, owner), [_JSON])

    async def _stored_response(self, scope: Scope, receive: Receive, send: Send) -> None:
        """`GET`/`DELETE /v1/responses/{id}` and `GET .../input_items`: the caller's tenant's stored responses
        (404 for another tenant's, an expired one, or when the gateway stores none)."""
        try:
            tenant = await self._tenant(_headers(scope))
        except GatewayError as refused:
            await _send(send, refused.status, openai_wire.error_body(refused), [_JSON])
            return
        response_id, _, rest = scope["path"].split("/responses/", 1)[1].partition("/")
        method = scope["method"]
        store = self.gateway.responses
        if store is None:
            absent = _no_response(response_id, None, "this gateway does not store responses (responses.store)")
            await _send(send, 404, openai_wire.error_body(absent), [_JSON])
            return
        if method == "DELETE" and not rest:
            deleted = await store.delete(tenant, response_id)
            if deleted:
                body = {"id": response_id, "object": "response", "deleted": True}
                await _send(send, 200, orjson.dumps(body), [_JSON])
                return
        elif method == "GET" and rest in ("", "input_items"):
            kept = await store.get(tenant, response_id, self._now())
            if kept is not None:
                if rest:
                    data = [{"id": f"item_{response_id}_{i}", **item} for i, item in enumerate(kept.input_items)]
                    body = {"object": "list", "data": data, "first_id": None, "last_id": None, "has_more": False}
                    if data:
                        body["first_id"], body["last_id"] = data[0]["id"], data[-1]["id"]
                    await _send(send, 200, orjson.dumps(body), [_JSON])
                else:
                    await _send(send, 200, orjson.dumps(kept.response), [_JSON])
                return
        else:
            await _send(send, 404, openai_wire.error_body(not_found(scope["path"])), [_JSON])
            return
        await _send(send, 404, openai_wire.error_body(_no_response(response_id, None)), [_JSON])

    async def _live(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _send(send, 200, b'{"status":"ok"}', [_JSON])

    async def _ready(self, scope: Scope, receive: Receive, send: Send) -> None:
        gateway = self.gateway
        degraded = gateway.degraded()
        status = "starting" if not gateway.ready else "degraded" if degraded else "ready"
        body = {
            "status": status,
            # While a shared service is away the instance still serves, under the policy shown here: a 503
            # would take every instance out of a load balancer at once for an outage they all share.
            "degraded": degraded,
            "models": [
                {"name": group.name, "deployments": [d.name for d in group.deployments]} for group in gateway.catalog
            ],
            "breakers": routing_admin.breaker_states(gateway.router),
        }
        await _send(send, 200 if gateway.ready else 503, orjson.dumps(body), [_JSON])

    async def _metrics(self, scope: Scope, receive: Receive, send: Send) -> None:
        metrics = self.gateway.metrics
        body = metrics.render()
        if self.gather_metrics is not None:
            body = await self.gather_metrics(body)
        await _send(send, 200, body, [(b"content-type", metrics.content_type.encode())])
