"""The audit trail's tables: hash-chained appends, signed checkpoints, retention pruning, verification, export.

Each gateway instance writes one chain: record n carries the hash of record n-1 and its own hash over its
content and that link. With an audit key (HMAC-SHA256) nobody without the key can recompute a link, so an
edited, inserted or deleted record shows; without one the links are plain SHA-256 (they still show
accidents and naive edits, not a forger with write access to the database). Per chain, a `head`
checkpoint (written in the same transaction as each batch) says how far the chain reached, so deleting
its last records shows too; pruning old records leaves an `anchor` checkpoint holding the last pruned
record's hash, from which the rest of the chain still verifies.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import delete, func, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from sluicegate.store.db import Store
from sluicegate.store.models import AuditCheckpoint, AuditRecord

GENESIS = "0" * 64  # the link before a chain's first record
_PAGE = 5000


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """A record before it is chained: when, what kind, who, what they did, to what, and its data (JSON)."""

    ts_micros: int
    kind: str
    actor: str
    action: str
    target: str
    data: str  # canonical JSON of before/after/detail, PII already masked


def payload(instance: str, seq: int, entry: Any) -> bytes:
    """What a record's hash covers: every column but the hashes themselves."""
    return orjson.dumps(
        [instance, seq, entry.ts_micros, entry.kind, entry.actor, entry.action, entry.target, entry.data]
    )


def link(key: bytes | None, prev_hash: str, content: bytes) -> str:
    if key:
        return hmac.new(key, prev_hash.encode() + content, hashlib.sha256).hexdigest()
    return hashlib.sha256(prev_hash.encode() + content).hexdigest()


def sign(key: bytes | None, instance: str, role: str, seq: int, hash_: str) -> str | None:
    if not key:
        return None
    return hmac.new(key, f"{instance}|{role}|{seq}|{hash_}".encode(), hashlib.sha256).hexdigest()


@dataclass(slots=True)
class AuditChain:
    """Where this instance's chain stands: the last sequence number written and its hash."""

    instance: str
    seq: int = 0
    last_hash: str = GENESIS


@dataclass(slots=True)
class Verification:
    chains: int = 0
    records: int = 0
    problems: list[str] = field(default_factory=list)
    unsigned_chains: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def _name(record: Any) -> str:
    return f"record {record.instance}#{record.seq} ({record.kind} {record.action} {record.target})"


class AuditTable:
    def __init__(self, store: Store, key: bytes | None) -> None:
        self._store = store
        self._key = key

    @property
    def signed(self) -> bool:
        return bool(self._key)

    def _upsert_checkpoint(self, values: dict[str, Any]) -> Any:
        upsert = sqlite_insert if self._store.is_sqlite else pg_insert
        statement = upsert(AuditCheckpoint).values(**values)
        return statement.on_conflict_do_update(
            index_elements=["instance", "role"],
            set_={name: statement.excluded[name] for name in ("seq", "hash", "ts_micros", "signature")},
        )

    async def append(self, chain: AuditChain, entries: Sequence[AuditEntry]) -> None:
        """Chains and writes the entries and moves the head, in one transaction; `chain` advances only once
        it is committed (a failed batch is retried whole, with the same sequence numbers)."""
        if not entries:
            return
        seq, prev = chain.seq, chain.last_hash
        rows = []
        for entry in entries:
            seq += 1
            hash_ = link(self._key, prev, payload(chain.instance, seq, entry))
            rows.append(
                {
                    "instance": chain.instance,
                    "seq": seq,
                    "ts_micros": entry.ts_micros,
                    "kind": entry.kind,
                    "actor": entry.actor,
                    "action": entry.action,
                    "target": entry.target,
                    "data": entry.data,
                    "prev_hash": prev,
                    "hash": hash_,
                }
            )
            prev = hash_
        head = {
            "instance": chain.instance,
            "role": "head",
            "seq": seq,
            "hash": prev,
            "ts_micros": entries[-1].ts_micros,
            "signature": sign(self._key, chain.instance, "head", seq, prev),
        }
        async with self._store.engine.begin() as conn:
            await conn.execute(insert(AuditRecord), rows)
            await conn.execute(self._upsert_checkpoint(head))
        chain.seq, chain.last_hash = seq, prev

    async def prune(self, before_micros: int) -> int:
        """Deletes every record older than `before_micros`, chain by chain, leaving an anchor checkpoint at
        the last one deleted. Returns how many records went."""
        deleted = 0
        async with self._store.engine.begin() as conn:
            found = await conn.execute(
                select(AuditRecord.instance, func.max(AuditRecord.seq))
                .where(AuditRecord.ts_micros < before_micros)
                .group_by(AuditRecord.instance)
            )
            for instance, last in found.all():
                hash_, ts = (
                    await conn.execute(
                        select(AuditRecord.hash, AuditRecord.ts_micros).where(
                            AuditRecord.instance == instance, AuditRecord.seq == last
                        )
                    )
                ).one()
                anchor = {
                    "instance": instance,
                    "role": "anchor",
                    "seq": last,
                    "hash": hash_,
                    "ts_micros": ts,
                    "signature": sign(self._key, instance, "anchor", last, hash_),
                }
                await conn.execute(self._upsert_checkpoint(anchor))
                result = await conn.execute(
                    delete(AuditRecord).where(AuditRecord.instance == instance, AuditRecord.seq <= last)
                )
                deleted += int(result.rowcount or 0)
        return deleted

    async def verify(self) -> Verification:
        """Walks every chain; each problem names the record (instance#seq) where the chain breaks."""
        report = Verification()
        async with self._store.engine.connect() as conn:
            checkpoints: dict[str, dict[str, Any]] = {}
            for cp in (await conn.execute(select(AuditCheckpoint.__table__))).all():
                checkpoints.setdefault(cp.instance, {})[cp.role] = cp
            instances = {i for (i,) in (await conn.execute(select(AuditRecord.instance).distinct())).all()}
            for instance in sorted(instances | set(checkpoints)):
                report.chains += 1
                await self._verify_chain(conn, instance, checkpoints.get(instance, {}), report)
        return report

    def _checkpoint_problem(self, cp: Any, report: Verification) -> bool:
        """Whether the checkpoint is to be distrusted (its problem added to the report)."""
        if cp.signature is None:
            if self._key:
                report.problems.append(f"{cp.role} checkpoint of chain {cp.instance} is not signed")
                return True
            return False
        if not self._key:
            report.problems.append(
                f"chain {cp.instance} is signed: give the audit key (SLUICEGATE_AUDIT_KEY) to verify it"
            )
            return True
        if not hmac.compare_digest(cp.signature, sign(self._key, cp.instance, cp.role, cp.seq, cp.hash) or ""):
            report.problems.append(f"{cp.role} checkpoint of chain {cp.instance} (seq {cp.seq}) was altered")
            return True
        return False

    async def _verify_chain(
        self, conn: AsyncConnection, instance: str, cps: dict[str, Any], report: Verification
    ) -> None:
        anchor, head = cps.get("anchor"), cps.get("head")
        for cp in (anchor, head):
            if cp is not None and self._checkpoint_problem(cp, report):
                return
        if head is None or head.signature is None:
            report.unsigned_chains += 1
        expected_seq = anchor.seq + 1 if anchor is not None else 1
        expected_prev = anchor.hash if anchor is not None else GENESIS
        last: Any = None
        after = expected_seq - 1
        while True:
            page = (
                await conn.execute(
                    select(AuditRecord.__table__)
                    .where(AuditRecord.instance == instance, AuditRecord.seq > after)
                    .order_by(AuditRecord.seq)
                    .limit(_PAGE)
                )
            ).all()
            if not page:
                break
            for record in page:
                report.records += 1
                gap = record.seq != expected_seq
                if gap:
                    report.problems.append(
                        f"chain {instance}: records {expected_seq}..{record.seq - 1} were deleted "
                        f"(the chain jumps to {_name(record)})"
                    )
                content_hash = link(self._key, record.prev_hash, payload(instance, record.seq, record))
                if not hmac.compare_digest(content_hash, record.hash):
                    report.problems.append(f"{_name(record)} was edited or inserted: its hash does not match")
                elif record.prev_hash != expected_prev and not gap:
                    report.problems.append(
                        f"{_name(record)} does not follow record {instance}#{record.seq - 1}: "
                        "a record was inserted or replaced before it"
                    )
                expected_prev, expected_seq = record.hash, record.seq + 1
                last = record
            after = page[-1].seq
        if head is None:
            if last is not None:
                report.problems.append(f"chain {instance}: its head checkpoint is missing (deleted?)")
            return
        if head.seq >= expected_seq:
            report.problems.append(
                f"chain {instance}: records {expected_seq}..{head.seq} were deleted "
                f"(its head checkpoint says the chain reached {head.seq})"
            )
        elif last is not None and head.seq < last.seq:
            report.problems.append(
                f"chain {instance}: records {head.seq + 1}..{last.seq} were added after its head "
                "checkpoint (inserted outside the gateway)"
            )
        elif last is not None and head.seq == last.seq and head.hash != last.hash:
            report.problems.append(f"{_name(last)} does not match its chain's head checkpoint")

    async def export(
        self, since_micros: int | None = None, kind: str | None = None, limit: int | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """The records in time order, as JSON-ready dicts (`data` parsed back)."""
        after: tuple[int, str, int] = (-(2**63), "", 0)
        given = 0
        while True:
            query = select(AuditRecord.__table__)
            if since_micros is not None:
                query = query.where(AuditRecord.ts_micros >= since_micros)
            if kind is not None:
                query = query.where(AuditRecord.kind == kind)
            ts, inst, seq = after
            query = query.where(
                (AuditRecord.ts_micros > ts)
                | ((AuditRecord.ts_micros == ts) & (AuditRecord.instance > inst))
                | ((AuditRecord.ts_micros == ts) & (AuditRecord.instance == inst) & (AuditRecord.seq > seq))
            )
            query = query.order_by(AuditRecord.ts_micros, AuditRecord.instance, AuditRecord.seq).limit(_PAGE)
            async with self._store.engine.connect() as conn:
                page = (await conn.execute(query)).all()
            if not page:
                return
            for record in page:
                yield {
                    "ts": record.ts_micros / 1e6,
                    "instance": record.instance,
                    "seq": record.seq,
                    "kind": record.kind,
                    "actor": record.actor,
                    "action": record.action,
                    "target": record.target,
                    **orjson.loads(record.data),
                    "prev_hash": record.prev_hash,
                    "hash": record.hash,
                }
                given += 1
                if limit is not None and given >= limit:
                    return
            last = page[-1]
            after = (last.ts_micros, last.instance, last.seq)
