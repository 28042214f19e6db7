"""POST /v1/embeddings (and Gemini's `:batchEmbedContents`): deterministic vectors in which texts that
share tokens point the same way.

Each token (and each adjacent token pair) adds +-1 at a few hashed positions, then the vector is
normalised: the same input always gets the same vector, and similar texts get a high cosine
similarity, which is what a semantic cache test needs.
"""

from __future__ import annotations

import base64
import itertools
import math
import struct
from typing import Any

import orjson

from sluicegate.providers.simulator import openai_format as wire
from sluicegate.providers.simulator.asgi import DisconnectWatch, Receive, Rejected, Send
from sluicegate.providers.simulator.behaviour import embedding_delay_s
from sluicegate.providers.simulator.delivery import deliver_early_failure, deliver_whole
from sluicegate.providers.simulator.runtime import Runtime
from sluicegate.tokens import cl100k

_MASK = (1 << 64) - 1
_PROBES = 4
_MAX_DIMENSIONS = 16_384


def _mix(value: int) -> int:
    """splitmix64's finaliser: a cheap, well-spread 64-bit hash of an integer."""
    value = (value ^ (value >> 30)) * 0xBF58476D1CE4E5B9 & _MASK
    value = (value ^ (value >> 27)) * 0x94D049BB133111EB & _MASK
    return value ^ (value >> 31)


def embed(tokens: list[int], dimensions: int, seed: int) -> list[float]:
    vector = [0.0] * dimensions
    features = [*tokens, *(a * 1_000_003 + b for a, b in itertools.pairwise(tokens))]
    salt = _mix(seed & _MASK)
    for feature in features:
        h = (feature * 0x9E3779B97F4A7C15 + salt) & _MASK
        for _ in range(_PROBES):
            h = _mix(h + 1)
            vector[h % dimensions] += 1.0 if h >> 63 else -1.0
    norm = math.sqrt(math.fsum(x * x for x in vector))
    if norm == 0:
        vector[0] = norm = 1.0
    return [x / norm for x in vector]


def _as_base64(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def _token_lists(value: Any) -> list[list[int]]:
    """The inputs as token id lists: a string, strings, a token array, or token arrays."""
    encode = cl100k().encode_ordinary
    if isinstance(value, str):
        return [encode(value)]
    if isinstance(value, list) and value:
        if all(isinstance(item, str) for item in value):
            return [encode(item) for item in value]
        if all(isinstance(item, int) and not isinstance(item, bool) for item in value):
            return [value]
        if all(isinstance(item, list) and all(isinstance(t, int) for t in item) for item in value):
            return value
    raise Rejected(400, wire.invalid_parameter("input", "a string, an array of strings or token arrays"))


async def embeddings(runtime: Runtime, body: Any, receive: Receive, send: Send) -> None:
    if not isinstance(body, dict):
        raise Rejected(400, wire.invalid_parameter("body", "a JSON object"))
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise Rejected(400, wire.missing_parameter("model"))
    if "input" not in body:
        raise Rejected(400, wire.missing_parameter("input"))
    await _embed(runtime, body, model, body.get("dimensions"), receive, send, gemini=False)


async def gemini_embeddings(runtime: Runtime, body: Any, model: str, receive: Receive, send: Send) -> None:
    """Gemini's batchEmbedContents: `{"requests": [{"content": {"parts": [{"text": ...}]}}]}` in,
    `{"embeddings": [{"values": [...]}]}` out, and, as Gemini does, no token usage."""
    requests = body.get("requests") if isinstance(body, dict) else None
    if not isinstance(requests, list) or not requests:
        raise Rejected(400, wire.missing_parameter("requests"))
    texts = []
    for item in requests:
        parts = ((item or {}).get("content") or {}).get("parts") if isinstance(item, dict) else None
        if not isinstance(parts, list):
            raise Rejected(400, wire.invalid_parameter("requests", "content parts"))
        texts.append("".join(str(part.get("text", "")) for part in parts if isinstance(part, dict)))
    dimensions = requests[0].get("outputDimensionality")
    await _embed(runtime, {"input": texts}, model, dimensions, receive, send, gemini=True)


async def _embed(
    runtime: Runtime, body: dict[str, Any], model: str, dimensions: Any, receive: Receive, send: Send, *, gemini: bool
) -> None:
    inputs = _token_lists(body["input"])
    behaviour = runtime.config.behaviour_for(model)
    dimensions = dimensions or behaviour.embedding_dimensions
    if not isinstance(dimensions, int) or not 0 < dimensions <= _MAX_DIMENSIONS:
        raise Rejected(400, wire.invalid_parameter("dimensions", f"an integer between 1 and {_MAX_DIMENSIONS}"))
    stats = runtime.stats.for_model(model)
    stats.requests += 1
    stats.last_request = body
    stats.in_flight += 1
    watch = DisconnectWatch(receive)
    try:
        draw = runtime.faults.draw(model)
        if draw.failure is not None:
            stats.fault(draw.failure.type)
            if await deliver_early_failure(send, watch, stats, draw.failure, model, stream=False):
                return
        if draw.slow_factor != 1.0:
            stats.fault("slow")
        vectors = [embed(tokens, dimensions, runtime.config.seed) for tokens in inputs]
        encoded: list[Any] = [_as_base64(v) for v in vectors] if body.get("encoding_format") == "base64" else vectors
        prompt_tokens = sum(len(tokens) for tokens in inputs)
        if gemini:
            reply = orjson.dumps({"embeddings": [{"values": vector} for vector in vectors]})
        else:
            reply = orjson.dumps(wire.embedding_list(model, encoded, prompt_tokens))
        delay_s = embedding_delay_s(
            behaviour, draw.slow_factor, seed=runtime.config.seed, model=model, content=body["input"]
        )
        await deliver_whole(send, watch, stats, delay_s, reply, draw.failure)
    finally:
        stats.in_flight -= 1
        watch.close()
