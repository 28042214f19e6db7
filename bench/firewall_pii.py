"""The PII and secrets detectors and the output redaction: recall and precision per PII type on the labelled
corpus (tests/data/pii/), CPU time of the PII + secrets checks for 2 KB prompts, and what output redaction
costs a stream (its first piece: what it adds to time to first token; and each later piece).

    python bench/firewall_pii.py [--split held_out|tune|all] [--misses]

CPU time is measured in process (time.process_time_ns around each call, medians and 99th percentiles over
many runs), so a loaded machine changes it less than wall time; it is not a throughput figure.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.guard.pii_corpus import load, score, total

from sluicegate.guard import pii, secrets
from sluicegate.guard.redact import Redactor, StreamRedactor

PROSE = (
    "Could you help me refactor this function? It reads the configuration file, validates the keys and returns "
    "a dictionary. I am on Python 3.11 and the tests run with pytest 8.2; the build takes about 40 seconds on "
    "the CI runners, which is too slow. The team would also like the error messages to say which file and key "
    "were wrong. "
)
CODE = (
    "def load(path):\n    with open(path) as f:\n        data = yaml.safe_load(f)  # 2024-05-01 v1.2.3\n"
    "    for i, row in enumerate(data['rows'][:100]):\n        if row['id'] % 7 == 0:\n            yield i, row\n"
)
SUPPORT = (
    "Hello, my order 48213 arrived damaged. Please refund it to my card 4111 1111 1111 1111 or to IBAN "
    "DE89 3704 0044 0532 0130 00. You can reach me at jane.doe@example.com or +44 20 7946 0958. "
    "My account was opened on 2021-03-04 from 203.0.113.42. "
)
PROMPTS = {
    name: (text * (2048 // len(text) + 1))[:2048]
    for name, text in (("prose", PROSE), ("code", CODE), ("support", SUPPORT))
}


def cpu_us(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    """Median and 99th percentile CPU time of `fn`, in microseconds."""
    for _ in range(20):
        fn()
    times = []
    for _ in range(runs):
        start = time.process_time_ns()
        fn()
        times.append(time.process_time_ns() - start)
    times.sort()
    return times[len(times) // 2] / 1000, times[int(len(times) * 0.99)] / 1000


def accuracy(split: str, misses: bool) -> None:
    scores = score(load(split), pii.scan)
    print(f"PII on the {split} corpus ({sum(s.found + s.missed for s in scores.values())} labelled values)")
    print(f"{'type':<18} {'values':>7} {'recall':>8} {'precision':>10}")
    for category in pii.CATEGORIES:
        s = scores[category]
        print(f"{category:<18} {s.found + s.missed:>7} {s.recall:>8.3f} {s.precision:>10.3f}")
    overall = total(scores)
    print(f"{'all':<18} {overall.found + overall.missed:>7} {overall.recall:>8.3f} {overall.precision:>10.3f}")
    if misses:
        for category, s in sorted(scores.items()):
            for line in s.misses:
                print(f"  missed {category}: {line}")
            for line in s.false:
                print(f"  false {category}: {line}")


def latency(runs: int) -> None:
    print(f"\nCPU time per 2 KB prompt, PII + secrets checks (median / p99 of {runs} runs, microseconds)")
    for name, text in PROMPTS.items():
        p50, p99 = cpu_us(lambda text=text: (pii.scan(text), secrets.scan(text)), runs)  # type: ignore[misc]
        print(f"  {name:<8} {p50:8.1f} / {p99:8.1f}")


def streaming(runs: int) -> None:
    answer = (PROSE + SUPPORT) * 2
    pieces = [answer[i : i + 4] for i in range(0, len(answer), 4)]

    def first() -> None:
        StreamRedactor(Redactor()).feed("Sure")

    def whole_stream() -> None:
        stream = StreamRedactor(Redactor())
        for piece in pieces:
            stream.feed(piece)
        stream.flush()

    p50, p99 = cpu_us(first, runs)
    print(f"\nOutput redaction of a stream: first piece {p50:.1f} / {p99:.1f} us (what it adds to time to first token)")
    p50, _ = cpu_us(whole_stream, max(20, runs // 50))
    print(f"  a {len(answer)}-character answer in {len(pieces)} pieces: {p50 / len(pieces):.1f} us per piece")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", default="held_out", choices=["held_out", "tune", "all"])
    parser.add_argument("--misses", action="store_true", help="list every missed and false finding")
    parser.add_argument("--runs", type=int, default=2000)
    args = parser.parse_args()
    accuracy(args.split, args.misses)
    latency(args.runs)
    streaming(args.runs)


if __name__ == "__main__":
    main()
