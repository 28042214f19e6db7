"""The /_sim control endpoints: read and replace fault rules per model, read and reset the stats."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError

from sluicegate.providers.simulator import openai_format as wire
from sluicegate.providers.simulator.asgi import Rejected, Send, send_response
from sluicegate.providers.simulator.config import FaultRule
from sluicegate.providers.simulator.runtime import Runtime

PREFIX = "/_sim/"
_FAULTS = "/_sim/faults"
_STATS = "/_sim/stats"


class _FaultsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    faults: list[FaultRule]


def _parse_rules(body: bytes) -> list[FaultRule]:
    try:
        return _FaultsBody.model_validate_json(body).faults
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'body'}: {error['msg']}" for error in exc.errors()
        )
        raise Rejected(400, wire.error_body(f"Invalid fault rules: {problems}", "invalid_request_error")) from None


async def control(runtime: Runtime, method: str, path: str, body: bytes, send: Send) -> None:
    reply: dict[str, Any]
    if path == _FAULTS and method == "GET":
        reply = runtime.faults.snapshot()
    elif path == _FAULTS and method == "DELETE":
        runtime.faults.clear()
        reply = runtime.faults.snapshot()
    elif path.startswith(_FAULTS + "/") and method == "PUT" and len(path) > len(_FAULTS) + 1:
        model = path[len(_FAULTS) + 1 :]
        runtime.faults.replace(model, _parse_rules(body))
        reply = {"model": model, "faults": runtime.faults.snapshot()["models"][model]}
    elif path == _STATS and method == "GET":
        reply = runtime.stats.snapshot()
    elif path == _STATS and method == "DELETE":
        runtime.stats.reset()
        reply = runtime.stats.snapshot()
    else:
        raise Rejected(404, wire.not_found(method, path))
    await send_response(send, 200, orjson.dumps(reply))
