"""The response cache in process: what a lookup costs (a miss's overhead), and for the semantic layer the
paraphrase hit rate, false hits and lookup latency as the threshold is swept.

    python bench/cache.py --exact                      # key hash + memory lookup, µs per request
    python bench/cache.py --semantic [--sizes 10000,100000]

No server, no network: CPU time of the cache's own work, medians and p99 over many requests.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from sluicegate.cache.key import CacheKey, request_digest
from sluicegate.cache.store import MemoryStore
from sluicegate.canonical import ChatRequest

_SYSTEM = {"role": "system", "content": "You are a helpful assistant for an online shop. " * 4}


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def exact(entries: int, requests: int) -> None:
    store = MemoryStore(1 << 30)
    for i in range(entries):
        await store.put(CacheKey("tenant:t", "g", f"{i:032x}").store_key, b"x" * 800, 3600)
    misses: list[float] = []
    hits: list[float] = []
    for i in range(requests):
        request = ChatRequest(
            "g",
            [_SYSTEM, {"role": "user", "content": f"Where is my order number {i}? It was due last week."}],
            max_tokens=300,
            params={"temperature": 0.2},
        )
        start = time.perf_counter()
        key = CacheKey("tenant:t", "g", request_digest(request, "g", "fingerprint"))
        found = await store.get(key.store_key)
        misses.append(time.perf_counter() - start)
        assert found is None
        await store.put(key.store_key, b"y" * 800, 3600)
        start = time.perf_counter()
        key = CacheKey("tenant:t", "g", request_digest(request, "g", "fingerprint"))
        found = await store.get(key.store_key)
        hits.append(time.perf_counter() - start)
        assert found is not None
    print(f"exact cache, memory store, {entries:,} entries, {requests:,} requests (µs per lookup, hash included)")
    print(f"{'':10}{'p50':>10}{'p99':>10}")
    for name, values in (("miss", misses), ("hit", hits)):
        print(f"{name:10}{_percentile(values, 0.5) * 1e6:10.1f}{_percentile(values, 0.99) * 1e6:10.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exact", action="store_true")
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=20_000)
    args = parser.parse_args()
    asyncio.run(exact(args.entries, args.requests))


if __name__ == "__main__":
    main()
