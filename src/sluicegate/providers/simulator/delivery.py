"""How an answer reaches the client when faults are drawn: error replies, hangs, waits, resets, bad bodies."""

from __future__ import annotations

from sluicegate.providers.simulator import openai_format as wire
from sluicegate.providers.simulator.asgi import JSON_CONTENT, DisconnectWatch, Headers, Send, send_response
from sluicegate.providers.simulator.config import FaultRule
from sluicegate.providers.simulator.stats import ModelStats

_DEFAULT_RATE_LIMIT_RETRY_S = 1.0


def _retry_after(seconds: float) -> Headers:
    return [(b"retry-after", f"{seconds:g}".encode())]


async def deliver_early_failure(
    send: Send, watch: DisconnectWatch, stats: ModelStats, rule: FaultRule, model: str, stream: bool
) -> bool:
    """Apply a failure that strikes before any reply exists; False when `rule` acts later instead."""
    match rule.type:
        case "rate_limit":
            retry_after = rule.retry_after if rule.retry_after is not None else _DEFAULT_RATE_LIMIT_RETRY_S
            await send_response(send, 429, wire.rate_limited(model, retry_after), _retry_after(retry_after))
        case "server_error":
            await send_response(send, 500, wire.server_error())
        case "unavailable" | "outage":
            headers = _retry_after(rule.retry_after) if rule.retry_after is not None else None
            await send_response(send, 503, wire.unavailable(), headers)
        case "hang" if not stream or rule.after_tokens is None:
            await watch.until_disconnect()
            _record_cancelled(stats, stream)
        case _:
            return False
    return True


def _record_cancelled(stats: ModelStats, stream: bool) -> None:
    if stream:
        stats.streams_cancelled += 1
    else:
        stats.requests_cancelled += 1


async def deliver_whole(
    send: Send,
    watch: DisconnectWatch,
    stats: ModelStats,
    delay_s: float,
    body: bytes,
    failure: FaultRule | None,
) -> None:
    """Wait `delay_s` (unless the client leaves), then send `body`, or break it if a fault says so."""
    if delay_s > 0 and await watch.sleep(delay_s):
        stats.requests_cancelled += 1
        return
    if failure is not None and failure.type == "reset":
        # Headers promise a body that never comes; returning now makes the server drop the connection.
        length = str(len(body)).encode()
        headers = [JSON_CONTENT, (b"content-length", length)]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        return
    if failure is not None and failure.type == "malformed_sse":
        body = body[: len(body) // 2]
    await send_response(send, 200, body)
