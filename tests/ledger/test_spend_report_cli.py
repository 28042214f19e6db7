"""`sluicegate spend report` shows every figure the admin API has, unpriced requests included."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from sluicegate.store.db import Store
from sluicegate.store.spend import SpendLedger


def _row(request_id: str, cost: int | None) -> dict[str, object]:
    return {
        "request_id": request_id,
        "ts": 1_790_000_000.0,
        "tenant_id": "acme",
        "team_id": "search",
        "user_id": None,
        "key_id": "key_1",
        "feature": None,
        "end_user": None,
        "endpoint": "chat",
        "model": "mystery" if cost is None else "gpt-4o-mini",
        "deployment": None,
        "provider": None,
        "input_tokens": 10,
        "output_tokens": 5,
        "cached_input_tokens": 0,
        "reasoning_tokens": 0,
        "cost_micros": cost,
        "usage_estimated": False,
        "latency_ms": 1.0,
        "ttft_ms": None,
        "cache_status": None,
        "outcome": "ok",
        "status": 200,
        "stream": False,
    }


async def _fill(url: str) -> None:
    store = Store(url)
    await store.migrate()
    ledger = SpendLedger(store)
    await ledger.insert([_row("req_a", 30), _row("req_b", None), _row("req_c", None)])
    await ledger.close()
    await store.close()


def _report(url: str, cwd: Path, fmt: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-m", "sluicegate", "spend", "report", "--by", "model", "--format", fmt],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "SLUICEGATE_DATABASE_URL": url},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_table_and_csv_show_unpriced_requests(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/store.db"
    asyncio.run(_fill(url))
    csv_lines = _report(url, tmp_path, "csv")
    assert csv_lines[0] == "group,requests,input_tokens,output_tokens,cost_usd,unpriced_requests"
    assert "mystery,2,20,10,0.000000,2" in csv_lines  # two requests whose cost is unknown, not "free"
    table = _report(url, tmp_path, "table")
    assert table[0].split() == ["group", "requests", "input_tokens", "output_tokens", "cost_usd", "unpriced_requests"]
    assert table[1].split()[-1] in ("0", "2") and {line.split()[-1] for line in table[1:]} == {"0", "2"}
