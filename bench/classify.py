"""The classifiers against the labelled set (tests/data/classify/prompts.jsonl), in process: tier agreement,
capable-served share, confusion matrix, per-task results, cost against always using the flagship, and the
CPU time per classification (process time, p50/p95 over repeated runs).

    python bench/classify.py [--split test|train|all] [--misses] [--learned]

`--learned` adds the learned classifier (needs numpy and wordllama, `pip install 'sluicegate[local-models]'`);
its latency here is the head plus the embedding computed in this process, not the model host's queueing.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

from sluicegate.classify.classification import Classification, Prompt
from sluicegate.classify.evaluate import Labelled, load, report, score
from sluicegate.classify.heuristic import HeuristicClassifier

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "classify" / "prompts.jsonl"


def _heuristic(rows: list[Labelled], repeat: int) -> tuple[list[Classification], list[float]]:
    classifier = HeuristicClassifier()
    decisions, times = [], []
    for row in rows:
        prompt = Prompt(row.messages)
        best = float("inf")
        for _ in range(repeat):
            began = time.process_time_ns()
            for _ in range(20):
                decision = classifier.classify_now(prompt)
            best = min(best, (time.process_time_ns() - began) / 20 / 1000)
        decisions.append(decision)
        times.append(best)
    return decisions, times


def _learned(rows: list[Labelled], min_confidence: float) -> tuple[list[Classification], list[float]]:
    from sluicegate.classify.learned import LearnedClassifier, LocalEncoder

    encoder = LocalEncoder()
    classifier = LearnedClassifier(encoder.embed_async, min_confidence=min_confidence)
    decisions, times = [], []
    for row in rows:
        began = time.process_time_ns()
        decision = asyncio.run(classifier.classify(Prompt(row.messages)))
        times.append((time.process_time_ns() - began) / 1000)
        decisions.append(decision)
    return decisions, times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", default="test", choices=["test", "train", "all"])
    parser.add_argument("--misses", action="store_true", help="list the under-served prompts")
    parser.add_argument("--learned", action="store_true", help="also the learned classifier (local model)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--min-confidence", type=float, default=0.8, help="learned: below it, the heuristic's")
    args = parser.parse_args()
    rows = load(DATA, None if args.split == "all" else args.split)
    runs = [("heuristic", *_heuristic(rows, args.repeat))]
    if args.learned:
        runs.append(("learned", *_learned(rows, args.min_confidence)))
    for name, decisions, times in runs:
        result = score(rows, decisions)
        print(report(f"{name} ({args.split})", result, times))
        if args.misses:
            for miss in result.misses:
                print("  under-served:", *miss)
        print()
    two_kb = Prompt([{"role": "user", "content": ("Our order history shows steady growth. " * 52)[:2000]}])
    classifier = HeuristicClassifier()
    samples = []
    for _ in range(200):
        began = time.process_time_ns()
        for _ in range(20):
            classifier.classify_now(two_kb)
        samples.append((time.process_time_ns() - began) / 20 / 1000)
    samples.sort()
    print(f"heuristic, one 2 KB prompt: p50 {samples[100]:.1f} us CPU, p95 {samples[190]:.1f} us CPU")


if __name__ == "__main__":
    main()
