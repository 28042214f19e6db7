"""Spend reports over a year of roll-ups: seeds a year of hourly and daily roll-ups (SQLite, or PostgreSQL with
--database-url) for N teams x M models, then times the reports the admin API serves (medians of --runs).

    python bench/rollups.py [--teams 20] [--models 3] [--runs 20] [--database-url postgresql://...]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import statistics
import tempfile
import time

from sqlalchemy import insert

from sluicegate.store.db import Store
from sluicegate.store.models import SpendRollup
from sluicegate.store.spend import SpendFilter, SpendLedger


async def seed(store: Store, teams: int, models: int) -> int:
    year = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    rows = []
    for d in range(365):
        day = (year + dt.timedelta(days=d)).strftime("%Y-%m-%d")
        for t in range(teams):
            for m in range(models):
                dims = {"tenant_id": "acme", "team_id": f"team{t}", "key_id": f"key{t}", "user_id": "", "feature": ""}
                one = {"model": f"model{m}", "input_tokens": 10, "output_tokens": 1, "unpriced_requests": 0}
                rows.append({"grain": "day", "bucket": day, **dims, **one, "requests": 24, "cost_micros": 24_000})
                for h in range(24):
                    bucket = f"{day}T{h:02d}"
                    rows.append({"grain": "hour", "bucket": bucket, **dims, **one, "requests": 1, "cost_micros": 1000})
    async with store.engine.begin() as conn:
        for i in range(0, len(rows), 20_000):
            await conn.execute(insert(SpendRollup), rows[i : i + 20_000])
    return len(rows)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teams", type=int, default=20)
    parser.add_argument("--models", type=int, default=3)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    folder = tempfile.mkdtemp()
    store = Store(args.database_url or f"sqlite+aiosqlite:///{folder}/rollups.db")
    await store.migrate()
    count = await seed(store, args.teams, args.models)
    ledger = SpendLedger(store)
    year = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    cases = {
        "year by team": ("team", SpendFilter()),
        "year by day, one team": ("day", SpendFilter(team_id="team3")),
        "month by model, partial days": (
            "model",
            SpendFilter(since=year + dt.timedelta(days=100, hours=5), until=year + dt.timedelta(days=131, hours=3)),
        ),
    }
    print(f"{count} roll-up rows ({args.teams} teams x {args.models} models, a year of hours and days)")
    print(f"{'report':32} {'median ms':>10} {'p90 ms':>8}")
    for name, (by, where) in cases.items():
        times = []
        for _ in range(args.runs):
            started = time.perf_counter()
            await ledger.report(by, where)
            times.append((time.perf_counter() - started) * 1000)
        times.sort()
        print(f"{name:32} {statistics.median(times):10.2f} {times[int(len(times) * 0.9) - 1]:8.2f}")
    await store.close()


if __name__ == "__main__":
    asyncio.run(main())
