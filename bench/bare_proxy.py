"""A bare proxy hop, the reference the overhead benchmark compares the gateway with (`--bare-proxy`).

    python bench/bare_proxy.py PORT MODEL=URL [MODEL=URL ...]

What the issue describes as the floor for a Python gateway on this machine: uvicorn with uvloop and
httptools, an aiohttp client, orjson; parse the request, forward it to the URL its model names, parse
the usage of a whole response (streams are relayed as they arrive), and no other work: no auth, limits,
routing, ledger, logs or metrics. Not part of Sluicegate.
"""

from __future__ import annotations

import sys
from typing import Any

import aiohttp
import orjson
import uvicorn

_JSON = [(b"content-type", b"application/json")]
_SSE = [(b"content-type", b"text/event-stream")]
_UPSTREAM_HEADERS = {"content-type": "application/json"}


class BareProxy:
    def __init__(self, upstreams: dict[str, str]) -> None:
        self._upstreams = upstreams
        self._session: aiohttp.ClientSession | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
                    await send({"type": "lifespan.startup.complete"})
                else:
                    assert self._session is not None
                    await self._session.close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["method"] == "GET":  # readiness
            await send({"type": "http.response.start", "status": 200, "headers": _JSON})
            await send({"type": "http.response.body", "body": b"{}"})
            return
        request = orjson.loads(body)
        url = self._upstreams[request["model"]]
        request["model"] = "bench-model"
        assert self._session is not None
        if request.get("stream"):
            request["stream_options"] = {"include_usage": True}
            async with self._session.post(url, data=orjson.dumps(request), headers=_UPSTREAM_HEADERS) as reply:
                await send({"type": "http.response.start", "status": reply.status, "headers": _SSE})
                async for data in reply.content.iter_any():
                    await send({"type": "http.response.body", "body": data, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            return
        async with self._session.post(url, data=orjson.dumps(request), headers=_UPSTREAM_HEADERS) as reply:
            data = await reply.read()
        response = orjson.loads(data)
        response.get("usage")
        await send({"type": "http.response.start", "status": reply.status, "headers": _JSON})
        await send({"type": "http.response.body", "body": orjson.dumps(response)})


def main() -> None:
    port = int(sys.argv[1])
    upstreams = dict(arg.split("=", 1) for arg in sys.argv[2:])
    uvicorn.run(
        BareProxy(upstreams),
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
