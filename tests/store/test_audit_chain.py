"""The audit chain on SQLite and PostgreSQL: an edited, inserted or deleted record is found and named;
pruning behind a signed anchor keeps the rest verifiable; export gives the records in time order."""

from __future__ import annotations

import hashlib

import orjson
from sqlalchemy import delete, insert, select, update

from sluicegate.store.audit import AuditChain, AuditEntry, AuditTable, payload
from sluicegate.store.db import Store
from sluicegate.store.models import AuditCheckpoint, AuditRecord

KEY = b"audit-key-for-tests"
T0 = 1_790_000_000_000_000  # micros


def entries(n: int, start: int = 0, step: int = 1_000_000) -> list[AuditEntry]:
    return [
        AuditEntry(T0 + (start + i) * step, "admin_change", "master", "update", f"team:t{start + i}", f'{{"n":{i}}}')
        for i in range(n)
    ]


async def written(store: Store, n: int = 10, key: bytes | None = KEY) -> AuditTable:
    table = AuditTable(store, key)
    chain = AuditChain("inst_a")
    await table.append(chain, entries(n // 2))
    await table.append(chain, entries(n - n // 2, start=n // 2))
    return table


async def problems(table: AuditTable) -> list[str]:
    return (await table.verify()).problems


async def test_an_intact_chain_verifies(store: Store) -> None:
    table = await written(store)
    report = await table.verify()
    assert report.ok, report.problems
    assert (report.chains, report.records, report.unsigned_chains) == (1, 10, 0)


async def test_an_edited_record_is_named(store: Store) -> None:
    table = await written(store)
    async with store.engine.begin() as conn:
        await conn.execute(
            update(AuditRecord).where(AuditRecord.seq == 4).values(data='{"n":999}')  # the before/after rewritten
        )
    found = await problems(table)
    assert len(found) == 1 and "inst_a#4" in found[0] and "edited" in found[0], found


async def test_an_inserted_record_is_named(store: Store) -> None:
    table = await written(store)
    # the forger renumbers the records after 6 and slips one in, linked with plain SHA-256 (no key)
    async with store.engine.begin() as conn:
        for seq in range(10, 6, -1):
            await conn.execute(update(AuditRecord).where(AuditRecord.seq == seq).values(seq=seq + 1))
        prev = (await conn.execute(select(AuditRecord.hash).where(AuditRecord.seq == 6))).scalar_one()
        fake = AuditEntry(T0 + 6_500_000, "admin_change", "master", "update", "team:forged", "{}")
        forged = hashlib.sha256(prev.encode() + payload("inst_a", 7, fake)).hexdigest()
        await conn.execute(
            insert(AuditRecord).values(
                instance="inst_a", seq=7, ts_micros=fake.ts_micros, kind=fake.kind, actor=fake.actor,
                action=fake.action, target=fake.target, data=fake.data, prev_hash=prev, hash=forged,
            )
        )  # fmt: skip
    found = await problems(table)
    assert any("inst_a#7" in p and "team:forged" in p for p in found), found


async def test_a_deleted_record_is_named_in_the_middle_and_at_the_end(store: Store) -> None:
    table = await written(store)
    async with store.engine.begin() as conn:
        await conn.execute(delete(AuditRecord).where(AuditRecord.seq == 5))
    found = await problems(table)
    assert found == ["chain inst_a: records 5..5 were deleted (the chain jumps to record inst_a#6 "
                     "(admin_change update team:t5))"], found  # fmt: skip
    async with store.engine.begin() as conn:
        await conn.execute(update(AuditRecord).where(AuditRecord.seq == 4).values(seq=5))  # hide the gap
        await conn.execute(delete(AuditRecord).where(AuditRecord.seq >= 9))  # and cut the tail
    found = await problems(table)
    assert any("inst_a#5" in p for p in found), found
    assert any("records 9..10 were deleted" in p for p in found), found


async def test_a_forged_checkpoint_is_refused(store: Store) -> None:
    table = await written(store)
    async with store.engine.begin() as conn:
        await conn.execute(delete(AuditRecord).where(AuditRecord.seq >= 9))
        await conn.execute(update(AuditCheckpoint).values(seq=8))  # the head moved back, without the key
    found = await problems(table)
    assert found == ["head checkpoint of chain inst_a (seq 8) was altered"], found


async def test_pruning_keeps_the_rest_verifiable(store: Store) -> None:
    table = await written(store, 10)
    assert await table.prune(T0 + 4_000_000) == 4  # records 1..4 are older
    report = await table.verify()
    assert report.ok and report.records == 6, report.problems
    chain = AuditChain("inst_a", 10, (await anchor_and_head(store))[1])
    await table.append(chain, entries(2, start=10))
    assert (await table.verify()).ok
    async with store.engine.begin() as conn:  # the first record after the anchor deleted: still seen
        await conn.execute(delete(AuditRecord).where(AuditRecord.seq == 5))
    assert any("records 5..5 were deleted" in p for p in await problems(table))


async def anchor_and_head(store: Store) -> tuple[str, str]:
    async with store.engine.connect() as conn:
        rows = dict((await conn.execute(select(AuditCheckpoint.role, AuditCheckpoint.hash))).all())
    return rows.get("anchor", ""), rows["head"]


async def test_a_signed_chain_needs_the_key_and_an_unsigned_one_says_so(store: Store) -> None:
    await written(store)
    assert any("give the audit key" in p for p in await problems(AuditTable(store, None)))
    assert any("was altered" in p for p in await problems(AuditTable(store, b"another key")))


async def test_unsigned_chains_still_catch_edits(store: Store) -> None:
    table = await written(store, key=None)
    report = await table.verify()
    assert report.ok and report.unsigned_chains == 1
    async with store.engine.begin() as conn:
        await conn.execute(update(AuditRecord).where(AuditRecord.seq == 2).values(actor="someone"))
    assert any("inst_a#2" in p for p in await problems(table))


async def test_export_in_time_order_with_filters(store: Store) -> None:
    table = await written(store, 6)
    other = AuditChain("inst_b")
    await table.append(other, [AuditEntry(T0 + 2_500_000, "breaker", "gateway", "open", "deployment:d", "{}")])
    rows = [r async for r in table.export()]
    assert [r["ts"] for r in rows] == sorted(r["ts"] for r in rows) and len(rows) == 7
    assert rows[3]["instance"] == "inst_b" and rows[3]["kind"] == "breaker"
    assert rows[0]["n"] == 0 and rows[0]["target"] == "team:t0"  # the data's fields at the top level
    assert [r["seq"] async for r in table.export(since_micros=T0 + 4_000_000)] == [5, 6]
    assert [r["kind"] async for r in table.export(kind="breaker")] == ["breaker"]
    orjson.dumps(rows)  # JSON-ready


async def test_an_empty_database_verifies(store: Store) -> None:
    report = await AuditTable(store, KEY).verify()
    assert report.ok and report.chains == 0
