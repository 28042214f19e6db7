"""The prompt firewall on its labelled corpus (tests/data/firewall/): detection per attack category, false
blocks and flags per kind of ordinary prompt, and the CPU time of the input checks for a 2 KB prompt.

    python bench/firewall.py [--split dev|heldout|all] [--level standard] [--misses]

CPU time is measured in process (time.process_time_ns per check, medians over many runs), so a loaded
machine changes it little; it is not a throughput figure.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.guard.corpus import Item, load, tools_size

from sluicegate.guard.firewall import Firewall
from sluicegate.guard.firewall_rules import rule_set
from sluicegate.guard.policy import Levels, decide

_PROMPT_2KB = (
    "I'm preparing the quarterly report for the operations team. Revenue grew by 12 percent, driven by demand "
    "in the cloud segment, while support tickets fell after we fixed the login bug. Can you help me rewrite the "
    "summary below so it reads clearly for executives, keeps the numbers, and suggests two next steps?\n\n"
    "Summary: The deployment pipeline now caches dependencies, which cut build times from 14 to 6 minutes. "
    "The on-call rotation was changed to weekly shifts. Customer churn stayed flat at 2.1 percent. Costs rose "
    "because of the new database cluster, but the migration is complete and the old servers are being retired. "
)


def scan_item(firewall: Firewall, item: Item) -> list:
    tools, tools_bytes = tools_size(item.params)
    return firewall.scan_request(
        [(item.role, item.text)],
        n=item.params.get("n"),
        max_tokens=item.params.get("max_tokens"),
        tools=tools,
        tools_bytes=tools_bytes,
    )


def evaluate(items: list[Item], level: str) -> dict[str, dict[str, dict[str, int]]]:
    firewall = Firewall(rule_set())
    policy = Levels().chain([level])
    assert policy is not None, "the level is off"
    table: dict[str, dict[str, dict[str, int]]] = {
        "attack": defaultdict(lambda: defaultdict(int)),
        "benign": defaultdict(lambda: defaultdict(int)),
    }
    for item in items:
        decision = decide(policy, scan_item(firewall, item))
        outcome = {"block": "blocked", "redact": "flagged", "flag": "flagged"}.get(decision.action, "allowed")
        table["attack" if item.attack else "benign"][item.label][outcome] += 1
    return table


def misses(items: list[Item], level: str) -> None:
    firewall = Firewall(rule_set())
    policy = Levels().chain([level])
    assert policy is not None
    for item in items:
        decision = decide(policy, scan_item(firewall, item))
        if item.attack and decision.action == "allow":
            print(f"MISSED  {item.label:28} {item.text[:110]!r}")
        if not item.attack and decision.action != "allow":
            rules = ",".join(f.rule_id for f, _ in decision.acted)
            print(f"{decision.action.upper():7} {item.label:28} {rules} {item.text[:90]!r}")


def _percentiles(check: Callable[[], object], runs: int) -> tuple[float, float]:
    for _ in range(200):
        check()
    samples = []
    clock = time.process_time_ns
    for _ in range(runs):
        start = clock()
        check()
        samples.append(clock() - start)
    samples.sort()
    return samples[len(samples) // 2] / 1000, samples[int(len(samples) * 0.99)] / 1000


def latency(runs: int = 5000) -> dict[str, tuple[float, float]]:
    """CPU microseconds per check of a 2 KB ordinary prompt (p50, p99): the firewall's own checks, and the
    whole stage at `standard` (with the PII and secrets detectors, and the decision)."""
    from sluicegate.canonical import ChatRequest
    from sluicegate.config.schema import GatewayConfig
    from sluicegate.events import EventBus
    from sluicegate.pipeline.stages import StageServices
    from sluicegate.pipeline.stages.firewall import create

    firewall = Firewall(rule_set())
    prompt = (_PROMPT_2KB * 3)[:2048]
    stage = create(StageServices(GatewayConfig.model_validate({"pipeline": {"stages": ["firewall"]}}), EventBus()))
    policy = Levels().chain(["standard"])
    assert policy is not None
    request = ChatRequest("m", [{"role": "user", "content": prompt}])
    return {
        "injection, jailbreak, obfuscation, token-bomb checks": _percentiles(
            lambda: firewall.scan_request([("user", prompt)]), runs
        ),
        "the firewall stage at standard (with PII and secrets)": _percentiles(
            lambda: stage.check(request, policy), runs
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", choices=["dev", "heldout", "fresh", "fresh2", "fresh3", "all"], default="all")
    parser.add_argument("--level", default="standard")
    parser.add_argument(
        "--misses", action="store_true", help="print every missed attack and every ordinary prompt acted on"
    )
    args = parser.parse_args()
    splits = ["dev", "heldout", "fresh", "fresh2", "fresh3"] if args.split == "all" else [args.split]
    for split in splits:
        items = load(split)  # type: ignore[arg-type]
        if args.misses:
            misses(items, args.level)
            continue
        table = evaluate(items, args.level)
        print(f"\n== {split} split, level {args.level}: {len(items)} items")
        print(f"{'attack category':30} {'n':>4} {'blocked':>8} {'flagged':>8} {'detected':>9}")
        total = caught = 0
        for label, row in sorted(table["attack"].items()):
            n = sum(row.values())
            total += n
            detected = row["blocked"] + row["flagged"]
            caught += detected
            print(f"{label:30} {n:4} {row['blocked']:8} {row['flagged']:8} {100 * detected / n:8.1f}%")
        print(f"{'all attacks':30} {total:4} {'':8} {'':8} {100 * caught / total:8.1f}%")
        print(f"\n{'ordinary prompt kind':30} {'n':>4} {'blocked':>8} {'flagged':>8}")
        total = blocked = flagged = 0
        for label, row in sorted(table["benign"].items()):
            n = sum(row.values())
            total += n
            blocked += row["blocked"]
            flagged += row["flagged"]
            print(f"{label:30} {n:4} {row['blocked']:8} {row['flagged']:8}")
        print(f"{'all ordinary prompts':30} {total:4} {100 * blocked / total:7.1f}% {100 * flagged / total:7.1f}%")
    if not args.misses:
        print("\n2 KB ordinary prompt, CPU time per check")
        for name, (p50, p99) in latency().items():
            print(f"{name:55} p50 {p50:6.1f} us   p99 {p99:6.1f} us")


if __name__ == "__main__":
    main()
