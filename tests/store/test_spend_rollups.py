"""Spend roll-ups on SQLite and PostgreSQL: reports read from them agree with a scan of the ledger for any
range and filter, whichever rows are rolled up yet; replays and in-flight rows count once; a seeded year of
roll-ups answers by team and by day."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from sqlalchemy import insert, select

from sluicegate.store.db import Store
from sluicegate.store.models import SpendRollup
from sluicegate.store.spend import SpendFilter, SpendLedger

START = dt.datetime(2026, 3, 1, 0, 0, tzinfo=dt.UTC)


def ledger_rows(n: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        team = rng.choice(["search", "ads", "mail"])
        rows.append(
            {
                "request_id": f"req_{i}",
                "ts": START + dt.timedelta(seconds=rng.randrange(0, 5 * 86400)),
                "tenant_id": "acme",
                "team_id": team,
                "user_id": rng.choice([None, "ann", "bob"]),
                "key_id": f"key_{team}_{rng.randrange(2)}",
                "feature": rng.choice([None, "chat", "summarise"]),
                "end_user": None,
                "endpoint": "chat",
                "model": rng.choice(["gpt-4o", "gpt-4o-mini"]),
                "deployment": "sim/x",
                "provider": "sim",
                "input_tokens": rng.randrange(1, 500),
                "output_tokens": rng.randrange(0, 200),
                "cached_input_tokens": 0,
                "reasoning_tokens": 0,
                "cost_micros": None if rng.random() < 0.05 else rng.randrange(0, 5000),
                "latency_ms": 1.0,
                "ttft_ms": None,
                "cache_status": None,
                "outcome": "in_flight" if rng.random() < 0.03 else "ok",
                "status": 200,
                "stream": False,
            }
        )
    return rows


def ranges() -> list[tuple[dt.datetime | None, dt.datetime | None]]:
    h = dt.timedelta(hours=1)
    return [
        (None, None),
        (START + 13 * h + dt.timedelta(minutes=17), None),
        (None, START + 50 * h + dt.timedelta(minutes=3)),
        (START + 5 * h + dt.timedelta(minutes=30), START + 100 * h + dt.timedelta(seconds=1)),  # days and hours
        (START + 25 * h, START + 49 * h),  # whole hours, one whole day
        (START + 26 * h + dt.timedelta(minutes=10), START + 27 * h + dt.timedelta(minutes=50)),  # under 2 hours
        (START + 30 * h, START + 30 * h),  # empty
    ]


async def assert_agrees(ledger: SpendLedger) -> None:
    for since, until in ranges():
        for by, where in (
            ("team", {}),
            ("model", {"team_id": "search"}),
            ("day", {}),
            ("feature", {"tenant_id": "acme", "model": "gpt-4o"}),
            ("user", {"key_id": "key_ads_1"}),
            ("key", {"feature": "chat"}),
        ):
            spend_filter = SpendFilter(since=since, until=until, **where)
            assert await ledger.report(by, spend_filter) == await ledger.scan(by, spend_filter), (by, since, until)


async def test_reports_agree_with_the_ledger_before_during_and_after_rolling(store: Store) -> None:
    ledger = SpendLedger(store)
    rows = ledger_rows(600)
    await ledger.insert(rows)
    await assert_agrees(ledger)  # nothing rolled up: all from the ledger
    ledger.rollups._batch_size = 250
    assert await ledger.rollups.roll() == 250
    await assert_agrees(ledger)  # part rolled up
    await ledger.rollups.catch_up()
    in_flight = sum(r["outcome"] == "in_flight" for r in rows)
    assert ledger.rollups.rolled == 600 - in_flight  # an in-flight row waits for its final row
    await assert_agrees(ledger)
    report = await ledger.report("team")
    assert sum(r.requests for r in report) == 600
    assert sum(r.cost_micros for r in report) == sum(r["cost_micros"] or 0 for r in rows)
    await ledger.close()


async def test_replays_and_final_rows_count_once(store: Store) -> None:
    ledger = SpendLedger(store)
    rows = ledger_rows(50, seed=3)
    await ledger.insert(rows)
    await ledger.rollups.catch_up()
    before = await ledger.report("key")
    await ledger.insert(rows)  # a replay of the spool: skipped by the ledger, so not rolled up twice
    finals = [{**r, "outcome": "ok", "cost_micros": 999} for r in rows if r["outcome"] == "in_flight"]
    await ledger.insert(finals)  # the streams end: their final rows replace the in-flight ones
    await ledger.rollups.catch_up()
    await ledger.rollups.catch_up()
    after = await ledger.report("key")
    assert sum(r.requests for r in after) == sum(r.requests for r in before) == 50
    assert sum(r.cost_micros for r in after) == sum(r.cost_micros for r in before) + sum(
        999 - (r["cost_micros"] or 0) for r in rows if r["outcome"] == "in_flight"
    )
    await assert_agrees(ledger)
    async with store.engine.connect() as conn:  # each row in exactly one hour and one day bucket
        hours = (await conn.execute(select(SpendRollup.requests).where(SpendRollup.grain == "hour"))).scalars()
        assert sum(hours) == 50
    await ledger.close()


async def test_a_seeded_year_of_rollups_answers(tmp_path: Any) -> None:
    store = Store(f"sqlite+aiosqlite:///{tmp_path}/year.db")
    await store.migrate()
    teams, models = ["search", "ads", "mail", "labs"], ["gpt-4o", "gpt-4o-mini"]
    year = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    days, hours = [], []
    for d in range(365):
        day = (year + dt.timedelta(days=d)).strftime("%Y-%m-%d")
        for t, team in enumerate(teams):
            for m, model in enumerate(models):
                dims = {"tenant_id": "acme", "team_id": team, "key_id": f"k_{team}", "user_id": "", "feature": ""}
                cost = 1000 * (t + 1) + m
                days.append({"grain": "day", "bucket": day, **dims, "model": model, "requests": 24,
                             "input_tokens": 240, "output_tokens": 24, "cost_micros": 24 * cost,
                             "unpriced_requests": 0})  # fmt: skip
                for h in range(24):
                    hours.append({"grain": "hour", "bucket": f"{day}T{h:02d}", **dims, "model": model,
                                  "requests": 1, "input_tokens": 10, "output_tokens": 1, "cost_micros": cost,
                                  "unpriced_requests": 0})  # fmt: skip
    async with store.engine.begin() as conn:
        await conn.execute(insert(SpendRollup), days)
        await conn.execute(insert(SpendRollup), hours)
    ledger = SpendLedger(store)
    whole = await ledger.report("team")
    assert [(r.group, r.requests, r.cost_micros) for r in whole] == [
        (team, 365 * 24 * 2, 365 * 24 * (2000 * (t + 1) + 1)) for t, team in reversed(list(enumerate(teams)))
    ]
    by_day = await ledger.report("day", SpendFilter(team_id="ads"))
    assert len(by_day) == 365 and {r.requests for r in by_day} == {48}
    # a range with partial days at both ends: hours there, days between
    since, until = year + dt.timedelta(days=10, hours=5), year + dt.timedelta(days=40, hours=7)
    part = await ledger.report("model", SpendFilter(since=since, until=until, team_id="mail"))
    hours_in = 30 * 24 + 2
    assert [(r.group, r.requests) for r in part] == [("gpt-4o-mini", hours_in), ("gpt-4o", hours_in)]
    await store.close()
