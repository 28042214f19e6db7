"""The response cache in process: what a lookup costs (a miss's overhead), and for the semantic layer the
paraphrase hit rate, false hits and lookup latency as the threshold is swept.

    python bench/cache.py --exact                      # key hash + memory lookup, µs per request
    python bench/cache.py --semantic [--sizes 10000,100000]

No server, no network: CPU time of the cache's own work, medians and p99 over many requests.
"""

from __future__ import annotations

# ruff: noqa: E402 (the thread settings below must come before numpy is imported)
import os

# as in the gateway (server/gateway.py): numpy on the event loop's thread uses one BLAS thread
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import argparse
import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sluicegate.cache.guards import facts, normalized
from sluicegate.cache.key import CacheKey, request_digest
from sluicegate.cache.semantic import SemanticIndex
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


DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "paraphrases.jsonl"


@dataclass
class Sweep:
    threshold: float
    paraphrase_hits: int
    paraphrases: int
    false_hits: int
    hits: int
    near_misses: int

    def row(self) -> str:
        rate = self.paraphrase_hits / self.paraphrases
        false = self.false_hits / self.hits if self.hits else 0.0
        return (
            f"{self.threshold:10.3f}{rate:12.1%}{self.false_hits:8d}{self.hits:8d}{false:10.2%}{self.near_misses:11d}"
        )


def embedder() -> Callable[[list[str]], np.ndarray]:
    from sluicegate.models.worker import StaticEmbedder

    model = StaticEmbedder("l2_supercat", 256, None)
    return lambda texts: np.frombuffer(model.embed(texts), dtype="<f4").reshape(len(texts), -1)


def quality(thresholds: list[float], margin: float, data: Path = DATA) -> list[Sweep]:
    """Every base question kept (and, in a second index, every near-miss too); each paraphrase must find
    its own base, each near-miss must find nothing. A hit on anything else is a false hit."""
    rows = [json.loads(line) for line in data.read_text().splitlines() if line.strip()]
    embed = embedder()
    texts = [(r["q"], r["p"], r["n"]) for r in rows]
    # a near-miss of one group may be another group's own question (a question asked in another language)
    group_of = {text: i for i, (q, p, _) in enumerate(texts) for text in [q, *p]}
    base_vectors = embed([normalized(q) for q, _, _ in texts])
    results = []
    for threshold in thresholds:
        index = SemanticIndex(1_000_000)
        for i, (question, _, _) in enumerate(texts):
            index.add("ctx", f"base{i}", base_vectors[i], facts(question))
        crowded = SemanticIndex(1_000_000)  # the bases and their near-misses, all kept
        for i, (question, _, near) in enumerate(texts):
            crowded.add("ctx", f"base{i}", base_vectors[i], facts(question))
            for j, vector in enumerate(embed([normalized(n) for n in near])):
                if near[j] not in group_of:  # another group's own question is in the index already
                    crowded.add("ctx", f"near{i}.{j}", vector, facts(near[j]))
        sweep = Sweep(threshold, 0, 0, 0, 0, 0)
        for i, (_, paraphrases, near) in enumerate(texts):
            for text, vector in zip(paraphrases, embed([normalized(p) for p in paraphrases]), strict=True):
                for target in (index, crowded):
                    match = target.search("ctx", vector, facts(text), threshold, margin)
                    sweep.paraphrases += 1
                    sweep.near_misses += match.verdict == "near-miss"
                    if match.verdict == "hit":
                        sweep.hits += 1
                        if match.key == f"base{i}":
                            sweep.paraphrase_hits += 1
                        else:
                            sweep.false_hits += 1
            for text, vector in zip(near, embed([normalized(n) for n in near]), strict=True):
                match = index.search("ctx", vector, facts(text), threshold, margin)
                sweep.near_misses += match.verdict == "near-miss"
                if match.verdict == "hit":
                    sweep.hits += 1
                    sweep.false_hits += match.key != f"base{group_of.get(text, -1)}"
        results.append(sweep)
    return results


def latency(sizes: list[int], queries: int) -> None:
    """A lookup at 10k and 100k kept questions: the question's facts, its normalised text, its embedding
    (the bundled model, computed here: the model host adds its pipe's round trip, see bench/model_host.py)
    and the index search, p50 and p99."""
    embed = embedder()
    rng = np.random.default_rng(7)
    print(f"\nsemantic lookup latency ({queries} lookups per size; ms; wall clock, and CPU time per lookup)")
    print(
        f"{'entries':>10}{'embed p50':>11}{'embed p99':>11}{'search p50':>12}{'search p99':>12}{'total p99':>11}"
        f"{'cpu/lookup':>12}"
    )
    rows = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
    questions = [q for r in rows for q in [r["q"], *r["p"]]]
    for size in sizes:
        index = SemanticIndex(size)
        vectors = rng.standard_normal((size, 256)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        base = facts("What is the capital of France?")
        for i in range(size):
            index.add("ctx", f"k{i}", vectors[i], base)
        embeds, searches, totals = [], [], []
        cpu_start = time.process_time()
        for n in range(queries):
            text = questions[n % len(questions)]
            start = time.perf_counter()
            question_facts = facts(text)
            vector = embed([normalized(text)])[0]
            middle = time.perf_counter()
            index.search("ctx", vector, question_facts, 0.9, 0.0)
            end = time.perf_counter()
            embeds.append(middle - start)
            searches.append(end - middle)
            totals.append(end - start)
        cpu = (time.process_time() - cpu_start) / queries
        print(
            f"{size:>10,}{_percentile(embeds, 0.5) * 1e3:11.2f}{_percentile(embeds, 0.99) * 1e3:11.2f}"
            f"{_percentile(searches, 0.5) * 1e3:12.2f}{_percentile(searches, 0.99) * 1e3:12.2f}"
            f"{_percentile(totals, 0.99) * 1e3:11.2f}{cpu * 1e3:12.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exact", action="store_true")
    parser.add_argument("--semantic", action="store_true")
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--thresholds", default="0.70,0.75,0.80,0.85,0.88,0.90,0.92,0.95")
    parser.add_argument("--margin", type=float, default=0.0)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--queries", type=int, default=2000)
    args = parser.parse_args()
    if args.exact or not args.semantic:
        asyncio.run(exact(args.entries, args.requests))
    if args.semantic or not args.exact:
        thresholds = [float(t) for t in args.thresholds.split(",")]
        print(f"\nsemantic cache on {DATA.name} (margin {args.margin}): each paraphrase looked up twice")
        print(f"{'threshold':>10}{'para hits':>12}{'false':>8}{'hits':>8}{'false %':>10}{'near-miss':>11}")
        for sweep in quality(thresholds, args.margin):
            print(sweep.row())
        latency([int(s) for s in args.sizes.split(",")], args.queries)


if __name__ == "__main__":
    main()
