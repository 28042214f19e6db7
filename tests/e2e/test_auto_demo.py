"""The `auto` route through `sluicegate serve --demo` with the official openai SDK: it answers, says what it
decided, writes it to the ledger, and budgets apply to the group it chose."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import Proc, free_port, start_process

DEMO_KEY = "sk-sluice-demo"
EASY = [{"role": "user", "content": "Hi! Thanks for the help yesterday."}]
HARD = [
    {
        "role": "user",
        "content": "Prove that every group of order p^2 is abelian, and show that the result fails for p^3.",
    }
]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Proc, Path]]:
    workdir = tmp_path_factory.mktemp("auto-demo")
    port = free_port()
    proc = start_process(["serve", "--demo", "--port", str(port)], port, workdir, "demo", ready_path="/health/ready")
    yield proc, workdir
    proc.stop()


def _client(proc: Proc, key: str = DEMO_KEY, cache: bool = True) -> openai.OpenAI:
    """`cache=False`: every request skips the response cache's lookup (the demo's semantic cache would answer
    a reworded question from an earlier test, and a cached answer is never reserved against a budget)."""
    headers = None if cache else {"cache-control": "no-cache"}
    return openai.OpenAI(base_url=f"{proc.url}/v1", api_key=key, max_retries=0, default_headers=headers)


def _ledger_row(workdir: Path, request_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while True:
        try:
            with sqlite3.connect(workdir / ".sluicegate" / "sluicegate.db") as db:
                db.row_factory = sqlite3.Row
                row = db.execute("SELECT * FROM spend_ledger WHERE request_id = ?", (request_id,)).fetchone()
        except sqlite3.OperationalError:
            row = None
        if row is not None:
            return dict(row)
        assert time.monotonic() < deadline, f"no ledger row for {request_id}"
        time.sleep(0.2)


def test_auto_is_listed_and_answers_with_what_it_decided(demo: tuple[Proc, Path]) -> None:
    proc, workdir = demo
    client = _client(proc)
    assert "auto" in {m.id for m in client.models.list()}
    easy = client.chat.completions.with_raw_response.create(model="auto", messages=EASY)  # type: ignore[arg-type]
    assert easy.parse().choices[0].message.content
    assert easy.headers["x-sluice-tier"] == "economy"
    assert easy.headers["x-sluice-classification"].startswith("task=chat; complexity=0.")
    assert easy.headers["x-sluice-route-reason"].startswith("auto: chat ")
    hard = client.chat.completions.with_raw_response.create(model="auto", messages=HARD)  # type: ignore[arg-type]
    assert hard.parse().model
    assert hard.headers["x-sluice-tier"] == "flagship"
    classification = hard.headers["x-sluice-classification"]
    assert classification.startswith("task=math; complexity=") and classification.endswith("; by=heuristic")
    reason = hard.headers["x-sluice-route-reason"]
    assert reason.startswith("auto: math ") and "-> flagship (claude-opus-4); latency" in reason
    row = _ledger_row(workdir, hard.headers["x-sluice-request-id"])
    assert row["requested_model"] == "auto" and row["model"] == "claude-opus-4"
    assert row["route_tier"] == "flagship" and row["task_type"] == "math"
    assert f"complexity={row['complexity']:.2f}" in classification
    metrics = httpx.get(f"{proc.url}/metrics").text
    labels = 'by="heuristic",group="claude-opus-4",task="math",tier="flagship"'
    assert f"sluicegate_auto_decisions_total{{{labels}}}" in metrics


def test_streams_through_auto_carry_the_headers_too(demo: tuple[Proc, Path]) -> None:
    proc, _ = demo
    with _client(proc).chat.completions.with_streaming_response.create(
        model="auto",
        messages=EASY,  # type: ignore[arg-type]
        stream=True,
    ) as response:
        assert response.headers["x-sluice-tier"] == "economy"
        assert "data: [DONE]" in "".join(response.iter_lines())


def _key(proc: Proc, budget_usd: str) -> str:
    response = httpx.post(
        f"{proc.url}/admin/keys",
        json={"team": "auto-demo", "budget_usd": budget_usd, "models": ["auto", "gpt-4o*", "claude-*", "gemini-*"]},
        headers={"authorization": f"Bearer {DEMO_KEY}"},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["key"])


def _fresh(messages: list[dict[str, str]], tag: str) -> list[dict[str, str]]:
    """The same request, worded apart from the others (the exact cache cannot answer it; the semantic one may)."""
    return [{"role": "user", "content": f"{messages[0]['content']} ({tag})"}]


def test_the_budget_applies_to_the_group_auto_chose(demo: tuple[Proc, Path]) -> None:
    """$0.001 pays an economy answer, not a flagship one: the flagship choice is moved to the cheaper model."""
    proc, _ = demo
    client = _client(proc, _key(proc, "0.001"), cache=False)
    easy = client.chat.completions.with_raw_response.create(model="auto", messages=_fresh(EASY, "budget"))  # type: ignore[arg-type]
    assert easy.headers["x-sluice-tier"] == "economy"
    assert "x-sluice-budget-downgraded-from" not in easy.headers
    hard = client.chat.completions.with_raw_response.create(model="auto", messages=_fresh(HARD, "budget"))  # type: ignore[arg-type]
    assert hard.parse().choices[0].message.content
    assert hard.headers["x-sluice-budget-downgraded-from"] == "claude-opus-4"  # opus could not be reserved
    assert hard.headers["x-sluice-tier"] == "economy"  # the tier of the group that answered


def test_a_budget_in_its_downgrade_tier_lowers_the_tier_auto_chooses(demo: tuple[Proc, Path]) -> None:
    proc, _ = demo
    budget = 0.006
    client = _client(proc, _key(proc, str(budget)), cache=False)
    spent = 0.0
    for attempt in range(80):  # small gpt-4o answers until the key has used 90% of its budget
        if spent >= 0.905 * budget:
            break
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o",
            messages=_fresh(EASY, f"spend {attempt}"),  # type: ignore[arg-type]
            max_tokens=20,
        )
        spent += float(raw.headers["x-sluice-cost-usd"])
    assert 0.905 * budget <= spent < budget
    client.chat.completions.create(model="gpt-4o-mini", messages=_fresh(EASY, "refresh"), max_tokens=5)  # type: ignore[arg-type]
    hard = client.chat.completions.with_raw_response.create(model="auto", messages=_fresh(HARD, "downgrade"))  # type: ignore[arg-type]
    assert hard.headers["x-sluice-tier"] in ("balanced", "economy")
    assert "budget downgrade tier" in hard.headers["x-sluice-route-reason"]


def test_a_cached_answer_says_what_auto_chose(demo: tuple[Proc, Path]) -> None:
    """The auto route runs before the response cache, which is keyed by the group that answers."""
    proc, _ = demo
    client = _client(proc)
    question = [{"role": "user", "content": "What is the capital of Portugal?"}]
    first = client.chat.completions.with_raw_response.create(model="auto", messages=question)  # type: ignore[arg-type]
    again = client.chat.completions.with_raw_response.create(model="auto", messages=question)  # type: ignore[arg-type]
    assert again.headers["x-sluice-cache"] == "hit-exact"
    assert again.headers["x-sluice-tier"] == first.headers["x-sluice-tier"] == "economy"
    assert again.headers["x-sluice-classification"] == first.headers["x-sluice-classification"]
