"""The model host's provider backend, served by the gateway's own pipeline: an embedding group is routed,
called with retries, failover and breakers, and each call written to the ledger (key and feature `model-host`)."""

from __future__ import annotations

import base64
import itertools
import secrets
from types import MappingProxyType

import numpy as np

from sluicegate.canonical import ChatChunk, EmbeddingRequest, EmbeddingResponse
from sluicegate.errors import GatewayError
from sluicegate.pipeline.context import RequestContext
from sluicegate.pipeline.runner import Answer, Pipeline
from sluicegate.principal import Principal

FEATURE = "model-host"
# Whom the host's own calls belong to in the ledger and the access log (no real key, no scopes, no budget).
PRINCIPAL = Principal(key_id=FEATURE, metadata=MappingProxyType({"feature": FEATURE}))


class _Capture:
    """A reply sink that keeps the answer instead of writing it to a client."""

    def __init__(self) -> None:
        self.answer: Answer | None = None
        self.error: GatewayError | None = None

    def encode(self, ctx: RequestContext, answer: Answer) -> bytes:
        self.answer = answer
        return b""

    def encode_error(self, ctx: RequestContext, error: GatewayError) -> bytes:
        self.error = error
        return b""

    async def send(self, ctx: RequestContext, status: int, body: bytes, error: GatewayError | None = None) -> None:
        return None

    async def open_stream(self, ctx: RequestContext) -> None:
        raise RuntimeError("the model host never streams")

    async def send_chunks(self, ctx: RequestContext, batch: list[ChatChunk]) -> None:
        return None

    def end_stream(self, ctx: RequestContext, error: GatewayError | None = None) -> bytes:
        return b""

    async def send_last(self, data: bytes) -> None:
        return None

    def client_left(self) -> bool:
        return False

    def close(self) -> None:
        return None


def _vector(item: object) -> list[float]:
    embedding = item.get("embedding") if isinstance(item, dict) else None
    if isinstance(embedding, str):  # base64 float32, as OpenAI sends with encoding_format=base64
        return [float(v) for v in np.frombuffer(base64.b64decode(embedding), dtype="<f4")]
    if not isinstance(embedding, list):
        raise ValueError("an embedding without a vector")
    return embedding


class GatewayEmbeddings:
    """`EmbeddingUpstream` over a pipeline of the gateway's route, ledger and record stages and its executor."""

    def __init__(self, pipeline: Pipeline) -> None:
        self._pipeline = pipeline
        self._prefix = "mh_" + secrets.token_hex(6)
        self._counter = itertools.count(1)

    async def embed(self, group: str, texts: list[str], dimensions: int | None) -> list[list[float]]:
        params = {"dimensions": dimensions} if dimensions else {}
        request = EmbeddingRequest(model=group, input=list(texts), params=params)
        ctx = RequestContext(
            f"{self._prefix}{next(self._counter):012x}", "embeddings", "openai", {"x-sluice-feature": FEATURE}, request
        )
        ctx.principal = PRINCIPAL
        reply = _Capture()
        await self._pipeline.handle(ctx, reply)
        if reply.error is not None:
            raise reply.error
        response = reply.answer
        if not isinstance(response, EmbeddingResponse):
            raise ValueError("the embedding group gave no embeddings")
        ordered = sorted(response.data, key=lambda item: int(item.get("index", 0)) if isinstance(item, dict) else 0)
        return [_vector(item) for item in ordered]
