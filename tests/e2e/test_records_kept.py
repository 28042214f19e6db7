"""Answers whose size or missing usage used to cost a record: large upstream bodies, Gemini embeddings."""

from __future__ import annotations

import sqlite3
import time

import openai
import pytest

from sluicegate.tokens import count_text
from tests.conftest import MASTER_KEY, Proc
from tests.e2e.families import families_gateway  # noqa: F401


@pytest.fixture
def client(families_gateway: Proc) -> openai.OpenAI:  # noqa: F811
    return openai.OpenAI(base_url=f"{families_gateway.url}/v1", api_key=MASTER_KEY, max_retries=0, timeout=30)


def ledger_row(gateway: Proc, request_id: str, timeout: float = 5.0) -> dict[str, object]:
    database = gateway.stdout.parent / ".sluicegate" / "sluicegate.db"
    deadline = time.monotonic() + timeout
    while True:
        with sqlite3.connect(database) as conn:
            conn.row_factory = sqlite3.Row
            row = conn.execute("SELECT * FROM spend_ledger WHERE request_id = ?", (request_id,)).fetchone()
        if row is not None:
            return dict(row)
        assert time.monotonic() < deadline, f"no ledger row for {request_id}"
        time.sleep(0.05)


@pytest.mark.parametrize("model", ["embed-fam", "embed-gemini"])
def test_embedding_bodies_of_several_megabytes_arrive_whole(
    client: openai.OpenAI,
    families_gateway: Proc,  # noqa: F811
    model: str,
) -> None:
    """300 inputs x 1536 floats is a ~8 MB upstream body: it used to stall above 1 MiB and end in a 504."""
    inputs = [f"document number {i} about rivers" for i in range(300)]
    started = time.monotonic()
    raw = client.embeddings.with_raw_response.create(model=model, input=inputs)
    result = raw.parse()
    assert len(result.data) == 300 and len(result.data[0].embedding) == 1536
    assert time.monotonic() - started < 20
    row = ledger_row(families_gateway, raw.headers["x-sluice-request-id"])
    assert row["status"] == 200 and row["input_tokens"] == sum(count_text(text) for text in inputs)


def test_gemini_embeddings_are_counted_by_the_gateway_and_marked_estimated(
    client: openai.OpenAI,
    families_gateway: Proc,  # noqa: F811
) -> None:
    """Gemini reports no usage for embeddings: the row counts the input, not 0 tokens for $0."""
    raw = client.embeddings.with_raw_response.create(model="embed-gemini", input=["alpha beta", "gamma"])
    result = raw.parse()
    assert result.model == "text-embedding-004", "never an empty model name"
    assert result.usage.prompt_tokens == count_text("alpha beta") + count_text("gamma")
    row = ledger_row(families_gateway, raw.headers["x-sluice-request-id"])
    assert row["input_tokens"] == result.usage.prompt_tokens
    assert row["usage_estimated"] == 1
    openai_row = ledger_row(
        families_gateway,
        client.embeddings.with_raw_response.create(model="embed-fam", input="alpha").headers["x-sluice-request-id"],
    )
    assert openai_row["usage_estimated"] == 0  # the provider's own count is not an estimate
