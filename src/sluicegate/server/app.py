"""The HTTP surface: a small ASGI application that hands each request to the pipeline.

It is written against ASGI directly, not a framework, because the proxy path is the product's hot path
and every framework layer measured here cost throughput (docs/performance.md).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
from collections.abc import Awaitable, Callable
from fnmatch import fnmatchcase
from typing import Any

import orjson

from sluicegate.canonical import ChatRequest
from sluicegate.errors import GatewayError, internal_error, not_found, payload_too_large, scrub
from sluicegate.pipeline.context import RequestContext
from sluicegate.pricing import micros_to_usd
from sluicegate.routing import admin as routing_admin
from sluicegate.server.admin import create_admin_app
from sluicegate.server.gateway import Gateway
from sluicegate.wire import ClientWire
from sluicegate.wire import anthropic as anthropic_wire
from sluicegate.wire import openai as openai_wire

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

log = logging.getLogger("sluicegate.server")

_JSON = (b"content-type", b"application/json")
_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


class RequestIds:
    """Unique request ids without a system call each: a random per-process prefix and a counter.

    (os.urandom per request showed up in profiles; ids need uniqueness, the ledger's idempotency key, not
    unpredictability.)"""

    def __init__(self) -> None:
        self._prefix = "req_" + secrets.token_hex(6)
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
    body: bytes = message.get("body", b"")
    if not message.get("more_body"):
        if len(body) > limit:
            raise payload_too_large(limit)
        return body
    parts = [body]
    size = len(body)
    while message.get("more_body"):
        message = await receive()
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


class GatewayApp:
    """The ASGI callable. Routes by exact path; everything else is a 404 in OpenAI's error shape."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self._max_body = gateway.config.server.max_body_bytes
        self._request_id = RequestIds()
        openai: ClientWire = openai_wire.OpenAIWire()
        self._routes: dict[tuple[str, str], Callable[[Scope, Receive, Send], Awaitable[None]]] = {}
        for prefix in ("/v1", ""):
            self._routes[("POST", f"{prefix}/chat/completions")] = self._chat_handler(openai)
            self._routes[("POST", f"{prefix}/embeddings")] = self._embeddings
            self._routes[("GET", f"{prefix}/models")] = self._models
        self._routes[("POST", "/v1/messages")] = self._chat_handler(anthropic_wire.AnthropicWire())
        self._routes[("POST", "/v1/messages/count_tokens")] = self._count_tokens
        self._routes[("GET", "/health/live")] = self._live
        self._routes[("GET", "/health/ready")] = self._ready
        self._routes[("GET", "/metrics")] = self._metrics
        self._admin = create_admin_app(gateway)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            handler = self._routes.get((scope["method"], scope["path"]))
            if handler is None:
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
            await self._chat(wire, scope, receive, send)

        return handle

    async def _chat(self, wire: ClientWire, scope: Scope, receive: Receive, send: Send) -> None:
        headers = _headers(scope)
        ctx = RequestContext(self._request_id(), "chat", wire.name, headers, None)
        pipeline = self.gateway.pipeline
        try:
            ctx.request = wire.parse_chat_request(await _read_body(receive, headers, self._max_body))
            if ctx.request.stream:
                await self._stream(wire, ctx, ctx.request, receive, send)
                return
            response = await pipeline.complete(ctx)
            body = wire.chat_response_body(response, ctx.usage_extension)  # e.g. max_tokens lowered to fit
            await pipeline.seal(ctx)
            await _send(send, 200, body, self._response_headers(ctx))
        except GatewayError as error:
            await self._fail(wire, ctx, send, error)
            return
        except Exception as exc:
            await self._fail(wire, ctx, send, self._internal(ctx, exc))
            return
        await pipeline.finish(ctx)

    async def _stream(
        self, wire: ClientWire, ctx: RequestContext, request: ChatRequest, receive: Receive, send: Send
    ) -> None:
        pipeline = self.gateway.pipeline
        chunks = await pipeline.stream(ctx)  # raises before anything is sent if the upstream fails early
        encoder = wire.stream_encoder(request)
        headers = self._response_headers(ctx, _SSE_HEADERS)
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        task = asyncio.current_task()
        assert task is not None
        state = {"done": False, "disconnected": False}

        async def watch_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            if not state["done"]:
                state["disconnected"] = True
                task.cancel()

        watcher = asyncio.get_running_loop().create_task(watch_disconnect())
        try:
            async for batch in chunks:
                parts = []
                for chunk in batch:
                    extension = None
                    if chunk.usage is not None:
                        extension = self._usage_extension(ctx)
                    data = encoder.encode(chunk, extension)
                    if data:
                        parts.append(data)
                if parts:  # one write for what arrived together: fewer syscalls, same order and timing
                    await send({"type": "http.response.body", "body": b"".join(parts), "more_body": True})
            state["done"] = True
            await pipeline.seal(ctx)  # the ledger has it before the client sees the stream end
            await send({"type": "http.response.body", "body": encoder.finish()})
        except GatewayError as error:  # the upstream failed after the stream started
            state["done"] = True
            ctx.error_code = error.code
            await pipeline.seal(ctx)
            await send({"type": "http.response.body", "body": encoder.error(error)})
        except asyncio.CancelledError:
            if not state["disconnected"]:
                raise
            task.uncancel()
            ctx.outcome = "cancelled"
            ctx.status = 499  # the client closed the request (nginx's convention)
        except Exception as exc:
            state["done"] = True
            body = encoder.error(self._internal(ctx, exc))
            await pipeline.seal(ctx)
            await send({"type": "http.response.body", "body": body})
        finally:
            state["done"] = True
            watcher.cancel()
            await chunks.aclose()  # type: ignore[attr-defined]
        await pipeline.finish(ctx)

    async def _embeddings(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = _headers(scope)
        ctx = RequestContext(self._request_id(), "embeddings", "openai", headers, None)
        pipeline = self.gateway.pipeline
        try:
            ctx.request = openai_wire.parse_embedding_request(await _read_body(receive, headers, self._max_body))
            response = await pipeline.embed(ctx)
            body = openai_wire.embedding_response_body(response)
            await pipeline.seal(ctx)
            await _send(send, 200, body, self._response_headers(ctx))
        except GatewayError as error:
            await self._fail(openai_wire.OpenAIWire(), ctx, send, error)
            return
        except Exception as exc:
            await self._fail(openai_wire.OpenAIWire(), ctx, send, self._internal(ctx, exc))
            return
        await pipeline.finish(ctx)

    async def _count_tokens(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Anthropic's token counting: authenticated, answered by the gateway's own counter, no upstream call."""
        headers = _headers(scope)
        try:
            await self.gateway.auth.authenticate(headers)
            body = anthropic_wire.count_tokens_body(await _read_body(receive, headers, self._max_body))
        except GatewayError as error:
            await _send(send, error.status, anthropic_wire.error_body(error), [_JSON])
            return
        await _send(send, 200, body, [_JSON])

    @staticmethod
    def _usage_extension(ctx: RequestContext) -> dict[str, Any] | None:
        """The `sluicegate` extension of a stream's usage: its cost and any note (e.g. a cut-off)."""
        extension: dict[str, Any] = {}
        if ctx.cost_micros is not None:
            extension["cost_usd"] = micros_to_usd(ctx.cost_micros)
        if ctx.usage_extension:
            extension.update(ctx.usage_extension)
        return extension or None

    def _response_headers(
        self, ctx: RequestContext, base: list[tuple[bytes, bytes]] | None = None
    ) -> list[tuple[bytes, bytes]]:
        headers = list(base) if base is not None else [_JSON]
        headers.append((b"x-sluice-request-id", ctx.request_id.encode()))
        if ctx.cost_micros is not None:
            headers.append((b"x-sluice-cost-usd", micros_to_usd(ctx.cost_micros).encode()))
        if ctx.deployment is not None:
            headers.append((b"x-sluice-deployment", ctx.deployment.name.encode("latin-1")))
            headers.append((b"x-sluice-attempts", str(ctx.attempts).encode()))
        if ctx.route_reason:
            headers.append((b"x-sluice-route-reason", ctx.route_reason.encode("latin-1", "replace")))
        if ctx.response_headers:
            headers.extend(_encode_headers(ctx.response_headers))
        return headers

    def _internal(self, ctx: RequestContext, exc: Exception) -> GatewayError:
        ctx.outcome = "internal_error"
        log.error("internal error request_id=%s error=%s: %s", ctx.request_id, type(exc).__name__, scrub(str(exc)))
        return internal_error(ctx.request_id)

    async def _fail(self, wire: ClientWire, ctx: RequestContext, send: Send, error: GatewayError) -> None:
        headers = [_JSON, (b"x-sluice-request-id", ctx.request_id.encode())]
        if ctx.attempts and ctx.deployment is not None:  # the last deployment tried, and how many calls
            headers.append((b"x-sluice-deployment", ctx.deployment.name.encode("latin-1")))
            headers.append((b"x-sluice-attempts", str(ctx.attempts).encode()))
        if ctx.route_reason:
            headers.append((b"x-sluice-route-reason", ctx.route_reason.encode("latin-1", "replace")))
        headers.extend(_encode_headers(error.headers))
        body = wire.error_body(error)
        await self.gateway.pipeline.seal(ctx, error)
        await _send(send, error.status, body, headers)
        await self.gateway.pipeline.finish(ctx, error)

    # -- operations ----------------------------------------------------------------------------------

    async def _models(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            principal = await self.gateway.auth.authenticate(_headers(scope))
        except GatewayError as error:
            await _send(send, error.status, openai_wire.error_body(error), [_JSON])
            return
        models = self.gateway.models()
        if principal.allowed_models:  # a key lists only the models it may use
            models = [m for m in models if any(fnmatchcase(m[0], p) for p in principal.allowed_models)]
        await _send(send, 200, openai_wire.models_body(models), [_JSON])

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
        await _send(send, 200, metrics.render(), [(b"content-type", metrics.content_type.encode())])
