"""The heuristic classifier: what a user notices when `auto` routes their request."""

from __future__ import annotations

from pathlib import Path

import pytest

from sluicegate.classify.classification import Prompt
from sluicegate.classify.evaluate import load, score
from sluicegate.classify.heuristic import HeuristicClassifier, classify_messages
from sluicegate.classify.tiers import tier_for

TIERS = ("economy", "balanced", "flagship")
DATA = Path(__file__).resolve().parent.parent / "data" / "classify" / "prompts.jsonl"


def _tier(text: str, **kwargs: object) -> str:
    return tier_for(classify_messages([{"role": "user", "content": text}], **kwargs).complexity, TIERS)


def _invoice(lines: int) -> str:
    rows = "\n".join(f"Replacement filter cartridge model {i} | 2 | 18.50 | 37.00" for i in range(lines))
    return f"INVOICE #48213\nDate: 2026-03-02\nDue: 2026-04-01\nBill to: Northwind Traders\n\n{rows}\n\nTotal: 2,812.00"


def test_length_is_not_difficulty() -> None:
    pasted = _invoice(60) + "\n\nWhat is the invoice number?"
    assert len(pasted) > 3000
    c = classify_messages([{"role": "user", "content": pasted}])
    assert c.task == "extract" and tier_for(c.complexity, TIERS) == "economy"
    proof = "Prove that sqrt(2) is irrational.\nThen show that there are infinitely many primes."
    c = classify_messages([{"role": "user", "content": proof}])
    assert c.task == "math" and tier_for(c.complexity, TIERS) == "flagship"


@pytest.mark.parametrize(
    ("text", "task", "tier"),
    [
        ("Hello! Thanks for yesterday.", "chat", "economy"),
        ("What is the capital of Peru?", "factual_qa", "economy"),
        ("What is 15% of 240?", "math", "economy"),
        ("Write a Python function that reverses a string.", "code", "economy"),
        ("Find the derivative of f(x) = x^3 * sin(x) + ln(x^2 + 1), showing each step.", "math", "balanced"),
        (
            "Write a bash script that backs up a directory to S3 every night, keeps the last 7 backups, "
            "and logs failures.",
            "code",
            "balanced",
        ),
        (
            "Design a distributed job scheduler with exactly-once execution across regions; discuss consistency, "
            "failure modes and the trade-offs.",
            "code",
            "flagship",
        ),
        ("Classify the sentiment of this review as positive or negative: 'Broke after a day.'", "classify", "economy"),
    ],
)
def test_task_and_tier_of_typical_requests(text: str, task: str, tier: str) -> None:
    c = classify_messages([{"role": "user", "content": text}])
    assert (c.task, tier_for(c.complexity, TIERS)) == (task, tier), c


PROOF_ZH = "\u8bc1\u660e\uff1a\u5b58\u5728\u65e0\u7a77\u591a\u4e2a\u7d20\u6570\u3002"  # prove: infinitely many primes
CAPITAL_JA = "\u65e5\u672c\u306e\u9996\u90fd\u306f\u3069\u3053\u3067\u3059\u304b\uff1f"  # the capital of Japan?


@pytest.mark.parametrize(
    ("english", "other"),
    [
        (
            "Translate to Spanish: 'The meeting moved to Friday.'",
            "Übersetze ins Spanische: 'Das Treffen ist am Freitag.'",
        ),
        ("Prove that there are infinitely many primes.", "Demuestra que hay infinitos números primos."),
        ("Prove that there are infinitely many primes.", PROOF_ZH),
        (
            "Summarize this text in two sentences:\n\n" + "Sales grew. " * 80,
            "Résume ce texte en deux phrases :\n\n" + "Les ventes ont augmenté. " * 60,
        ),
        ("What is the capital of Japan?", CAPITAL_JA),
    ],
)
def test_other_languages_are_classified_as_english_is(english: str, other: str) -> None:
    a = classify_messages([{"role": "user", "content": english}])
    b = classify_messages([{"role": "user", "content": other}])
    assert (a.task, tier_for(a.complexity, TIERS)) == (b.task, tier_for(b.complexity, TIERS)), (a, b)


def test_code_blocks_and_equations_are_seen() -> None:
    snippet = "Why does this fail?\n```python\ndef f(xs):\n    return sum(xs) / len(xs)\nf([])\n```"
    assert classify_messages([{"role": "user", "content": snippet}]).task == "code"
    assert classify_messages([{"role": "user", "content": "Solve 3x + 7 = 22 and 2y - x = 4."}]).task == "math"


def test_a_short_follow_up_keeps_the_task_of_the_conversation() -> None:
    messages = [
        {"role": "user", "content": "Write a Python function that merges two sorted lists."},
        {"role": "assistant", "content": "```python\ndef merge(a, b): ...\n```"},
        {"role": "user", "content": "now in Go please"},
    ]
    assert classify_messages(messages).task == "code"


def test_needs_and_latency_tolerance_come_from_the_request() -> None:
    image = [{"type": "text", "text": "What is in this picture?"}, {"type": "image_url", "image_url": {"url": "x"}}]
    c = classify_messages([{"role": "user", "content": image}], tools=True)
    assert c.needs == {"vision", "tools"}
    assert "long_context" in classify_messages([{"role": "user", "content": "word " * 40_000}]).needs
    assert classify_messages([{"role": "user", "content": "hi"}], stream=True).latency == "interactive"
    assert classify_messages([{"role": "user", "content": "hi"}], max_latency_ms=800).latency == "interactive"
    assert classify_messages([{"role": "user", "content": "hi"}], priority=0).latency == "relaxed"
    assert classify_messages([{"role": "user", "content": "hi"}]).latency == "normal"


def test_expected_output_tokens_follow_the_task_and_the_cap() -> None:
    short = classify_messages([{"role": "user", "content": "Is this spam? 'Win a cruise now'"}])
    long = classify_messages([{"role": "user", "content": "Write a 1,500-word short story about a lighthouse."}])
    assert short.output_tokens < 100 < long.output_tokens
    capped = classify_messages([{"role": "user", "content": "Write a long essay on rivers."}], max_tokens=50)
    assert capped.output_tokens <= 50


def test_the_labelled_set_has_the_variety_it_promises() -> None:
    rows = load(DATA)
    assert len(rows) >= 1000
    assert sum(r.lang != "en" for r in rows) >= 0.1 * len(rows)
    assert sum(sum(m["role"] == "user" for m in r.messages) > 1 for r in rows) >= 50  # multi-turn
    assert {r.tier for r in rows} == set(TIERS)
    families = {split: {r.id.rsplit(":", 1)[0] for r in rows if r.split == split} for split in ("train", "test")}
    assert not families["train"] & families["test"], "a template family on both sides of the split"
    long_easy = [r for r in rows if r.tier == "economy" and len(r.messages[-1]["content"]) > 1000]
    short_hard = [r for r in rows if r.tier == "flagship" and len(r.messages[-1]["content"]) < 120]
    assert len(long_easy) >= 20 and len(short_hard) >= 20


def test_on_the_test_split_the_heuristic_serves_almost_every_prompt_with_a_capable_tier() -> None:
    """The issue's targets are capable-served >= 98%, agreement >= 90%, cost <= 35% of always-flagship; the
    heuristic reaches about 93% / 82% / 32% on this test split (bench/classify.py). These floors guard what
    it does today, so a change that makes it worse fails here."""
    rows = load(DATA, "test")
    classifier = HeuristicClassifier()
    result = score(rows, [classifier.classify_now(Prompt(r.messages)) for r in rows])
    assert result.capable_share >= 0.92
    assert result.agreement >= 0.81
    assert result.cost_share <= 0.35
