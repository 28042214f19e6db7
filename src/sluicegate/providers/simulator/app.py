"""The simulator as a raw ASGI application: routing, authentication, lifespan, error shaping.

No framework on purpose: this app is the upstream of the gateway's throughput benchmark, so the path
from socket to handler is a dict lookup.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote

import orjson
from pydantic import ValidationError

from sluicegate.providers.simulator import openai_format as wire
from sluicegate.providers.simulator.asgi import Receive, Rejected, Scope, Send, read_body, send_response
from sluicegate.providers.simulator.chat import chat_completions
from sluicegate.providers.simulator.config import ScriptedReply, SimulatorConfig, parse_reply_header
from sluicegate.providers.simulator.control import PREFIX as CONTROL_PREFIX
from sluicegate.providers.simulator.control import control
from sluicegate.providers.simulator.embeddings import embeddings, gemini_embeddings
from sluicegate.providers.simulator.family import Format, route, serve
from sluicegate.providers.simulator.family_formats import FORMATS, azure_model, credential_of
from sluicegate.providers.simulator.faults import FaultBook
from sluicegate.providers.simulator.runtime import Runtime, fingerprint_for
from sluicegate.providers.simulator.text import Corpus, verify_vocabulary
from sluicegate.tokens import cl100k

Handler = Callable[[Runtime, Any, Receive, Send], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_MODELS_PATH = "/v1/models"
_CHAT_PATH = "/v1/chat/completions"
REPLY_HEADER = b"x-sim-reply"


class SimulatorApp:
    """The ASGI callable. It owns its `Runtime`: one app, one set of faults and stats."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        key = runtime.config.api_key
        self._expected_auth: bytes | None = b"Bearer " + key.encode() if key else None
        self._json_routes: dict[tuple[str, str], Handler] = {("POST", "/v1/embeddings"): embeddings}
        self._created = int(time.time())
        self._models_body = orjson.dumps(wire.model_list(list(runtime.config.models), self._created))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await _lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        method: str = scope["method"]
        path: str = scope["path"]
        try:
            if path.startswith(CONTROL_PREFIX):
                # Test and drill tooling, not the provider API: the simulated API key does not guard it.
                await control(self.runtime, method, path, await read_body(receive), send)
                return
            if self._expected_auth is not None:
                self._authenticate(scope)
            if method == "POST" and path == _CHAT_PATH:
                script = _script(scope, None)
                await chat_completions(self.runtime, _parse_json(await read_body(receive)), receive, send, script)
            elif (handler := self._json_routes.get((method, path))) is not None:
                await handler(self.runtime, _parse_json(await read_body(receive)), receive, send)
            elif method == "POST" and path.endswith(":batchEmbedContents") and "/models/" in path:
                model = unquote(path.split("/models/", 1)[1].rpartition(":")[0])
                await gemini_embeddings(self.runtime, _parse_json(await read_body(receive)), model, receive, send)
            elif method == "POST" and (family := route(path)) is not None:
                fmt: Format = FORMATS[family[0]]
                script = _script(scope, fmt)
                body = _parse_json(await read_body(receive))
                await serve(self.runtime, fmt, body, family[1], family[2], receive, send, script)
            elif method == "POST" and (deployment := azure_model(path)) is not None:
                script = _script(scope, None)
                body = _parse_json(await read_body(receive))
                if isinstance(body, dict):
                    body["model"] = deployment  # Azure names the deployment in the URL
                await chat_completions(self.runtime, body, receive, send, script)
            elif method == "GET" and path == _MODELS_PATH:
                await send_response(send, 200, self._models_body)
            elif method == "GET" and path.startswith(_MODELS_PATH + "/"):
                model = wire.model_list([path[len(_MODELS_PATH) + 1 :]], self._created)["data"][0]
                await send_response(send, 200, orjson.dumps(model))
            else:
                raise Rejected(404, wire.not_found(method, path))
        except Rejected as rejected:
            await send_response(send, rejected.status, rejected.body, rejected.headers)

    def _authenticate(self, scope: Scope) -> None:
        given = next((value for name, value in scope["headers"] if name == b"authorization"), None)
        expected = self._expected_auth or b""
        if given != expected and credential_of(scope["headers"]) != expected[len(b"Bearer ") :]:
            key = given.decode("latin-1").removeprefix("Bearer ").strip() if given else None
            raise Rejected(401, wire.invalid_api_key(key))


def _script(scope: Scope, fmt: Format | None) -> ScriptedReply | None:
    """The reply the `x-sim-reply` header asks for; a bad value is a 400 in the family's error shape."""
    for name, value in scope["headers"]:
        if name == REPLY_HEADER:
            try:
                return parse_reply_header(value.decode("latin-1"))
            except ValidationError as error:
                detail = f"x-sim-reply: {error.errors()[0]['msg']}"
                if fmt is not None:
                    raise fmt.error("bad_request", "", detail) from None
                raise Rejected(400, wire.error_body(detail, "invalid_request_error", "x-sim-reply")) from None
    return None


def _parse_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise Rejected(400, wire.invalid_json()) from None


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def create_app(config: SimulatorConfig, *, clock: Callable[[], float] = time.monotonic) -> SimulatorApp:
    """A ready ASGI app serving `config`. `clock` times outage windows (inject one in tests)."""
    verify_vocabulary(cl100k())  # also loads the encoding now rather than on the first request
    runtime = Runtime(config, FaultBook(config, clock), Corpus(config.seed), fingerprint=fingerprint_for(config.seed))
    return SimulatorApp(runtime)
