"""Scoring a classifier against a labelled set: the tier it would route each prompt to (with the default
tiers and capabilities) against the cheapest tier that answers it acceptably.

Used by `bench/classify.py` (which prints the figures) and by the tests (which hold them to targets).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sluicegate.classify.classification import Classification
from sluicegate.classify.config import DEFAULT_TIERS, TASK_TYPES
from sluicegate.classify.tiers import tier_for

# Blended USD per million tokens per tier, fixed so that figures compare across runs.
TIER_PRICES = {"economy": 0.4, "balanced": 6.0, "flagship": 30.0}
# Output tokens a task usually writes, by its label (the same for every classifier: cost is not tuned by it).
_LABEL_OUTPUT = {"chat": 60, "factual_qa": 100, "summarise": 200, "extract": 120, "classify": 10,
                 "translate": 200, "rewrite": 200, "code": 500, "math": 400, "reasoning": 500,
                 "creative": 450, "analysis": 600}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Labelled:
    id: str
    split: str
    tier: str
    task: str
    lang: str
    messages: list[dict[str, Any]]

    @property
    def tokens(self) -> int:
        chars = sum(len(m.get("content") or "") for m in self.messages if isinstance(m.get("content"), str))
        return chars // 4 + _LABEL_OUTPUT[self.task]


def load(path: Path, split: str | None = None) -> list[Labelled]:
    rows = []
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            row = json.loads(line)
            if split is None or row["split"] == split:
                rows.append(Labelled(row["id"], row["split"], row["tier"], row["task"], row["lang"], row["messages"]))
    return rows


@dataclass
class Score:
    n: int = 0
    agree: int = 0
    capable: int = 0
    task_agree: int = 0
    cost: float = 0.0
    flagship_cost: float = 0.0
    confusion: Counter[tuple[str, str]] = field(default_factory=Counter)  # (label, chosen)
    per_task: dict[str, list[int]] = field(default_factory=dict)  # task -> [n, agree, capable]
    misses: list[tuple[str, str, str, float]] = field(default_factory=list)  # under-served: (id, label, chosen, c)

    @property
    def agreement(self) -> float:
        return self.agree / self.n if self.n else 0.0

    @property
    def capable_share(self) -> float:
        return self.capable / self.n if self.n else 0.0

    @property
    def cost_share(self) -> float:
        return self.cost / self.flagship_cost if self.flagship_cost else 0.0

    @property
    def task_accuracy(self) -> float:
        return self.task_agree / self.n if self.n else 0.0


def score(rows: Sequence[Labelled], decisions: Sequence[Classification], tiers: Sequence[str] = DEFAULT_TIERS) -> Score:
    result = Score()
    rank = {tier: i for i, tier in enumerate(tiers)}
    for row, decision in zip(rows, decisions, strict=True):
        chosen = tier_for(decision.complexity, tiers)
        result.n += 1
        agree = chosen == row.tier
        capable = rank[chosen] >= rank[row.tier]
        result.agree += agree
        result.capable += capable
        result.task_agree += decision.task == row.task
        result.cost += row.tokens * TIER_PRICES[chosen]
        result.flagship_cost += row.tokens * TIER_PRICES[tiers[-1]]
        result.confusion[(row.tier, chosen)] += 1
        counts = result.per_task.setdefault(row.task, [0, 0, 0])
        counts[0] += 1
        counts[1] += agree
        counts[2] += capable
        if not capable:
            result.misses.append((row.id, row.tier, chosen, decision.complexity))
    return result


def report(name: str, result: Score, latencies_us: Sequence[float], tiers: Sequence[str] = DEFAULT_TIERS) -> str:
    ordered = sorted(latencies_us)
    p50 = ordered[len(ordered) // 2] if ordered else 0.0
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))] if ordered else 0.0
    lines = [
        f"== {name}: {result.n} prompts",
        f"tier agreement        {result.agreement:7.1%}",
        f"capable-served        {result.capable_share:7.1%}   (chosen tier >= label)",
        f"cost vs flagship      {result.cost_share:7.1%}   (economy 0.4, balanced 6, flagship 30 USD/M tokens)",
        f"task accuracy         {result.task_accuracy:7.1%}",
        f"latency p50 / p95     {p50:7.1f} / {p95:.1f} us",
        "confusion (rows: label, columns: chosen)",
        "            " + "".join(f"{t:>10}" for t in tiers),
    ]
    for label in tiers:
        lines.append(f"{label:>12}" + "".join(f"{result.confusion[(label, t)]:>10}" for t in tiers))
    lines.append("per task      n  agree  capable")
    for task in TASK_TYPES:
        n, agree, capable = result.per_task.get(task, [0, 0, 0])
        if n:
            lines.append(f"{task:>10} {n:>4} {agree / n:6.0%} {capable / n:8.0%}")
    return "\n".join(lines)
