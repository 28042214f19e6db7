"""The provider backend: embeddings from one of the gateway's own model groups, through its upstream path.

Batches are merged by the host as for the local backend; each batch is one embeddings request. The
vectors are L2-normalised here, so every backend gives callers the same kind of rows.
"""

from __future__ import annotations

import asyncio
import math
from typing import Protocol

import numpy as np

from sluicegate.models.config import ModelHostConfig, ProviderEmbeddings
from sluicegate.models.local import BackendError

_CONCURRENT_BATCHES = 4


class EmbeddingUpstream(Protocol):
    """The gateway's own call path for an embedding group (routing, retries, failover, the ledger)."""

    async def embed(self, group: str, texts: list[str], dimensions: int | None) -> list[list[float]]: ...


class ProviderBackend:
    def __init__(self, config: ModelHostConfig, upstream: EmbeddingUpstream) -> None:
        assert isinstance(config.embeddings, ProviderEmbeddings)
        self._group = config.embeddings.group
        self.dimensions: int | None = config.embeddings.dimensions
        self._upstream = upstream
        self.slots = _CONCURRENT_BATCHES
        self._free = asyncio.Semaphore(self.slots)
        self.up = 0

    async def start(self) -> None:
        self.up = 1

    async def stop(self) -> None:
        self.up = 0

    async def acquire(self) -> None:
        await self._free.acquire()

    def release(self, slot: object) -> None:
        self._free.release()

    async def run(self, slot: object, texts: list[str]) -> tuple[int, int, bytes]:
        try:
            rows = await self._upstream.embed(self._group, texts, self.dimensions)
        except Exception as exc:  # the gateway's error for its own call: the callers' fail policy applies
            raise BackendError(f"{type(exc).__name__}: {str(exc)[:200]}") from None
        finally:
            self.release(slot)
        if len(rows) != len(texts) or not rows:
            raise BackendError(f"the provider returned {len(rows)} vectors for {len(texts)} texts")
        vectors = np.asarray(rows, dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors /= np.where(norms > 0, norms, 1.0)
        if not math.isfinite(float(vectors.sum())):
            raise BackendError("the provider returned vectors that are not finite")
        return vectors.shape[0], vectors.shape[1], vectors.astype("<f4", copy=False).tobytes()
