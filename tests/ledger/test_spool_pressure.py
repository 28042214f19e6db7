"""A full or failing spool disk: no torn line, no record lost, new requests refused until it recovers."""

from __future__ import annotations

import asyncio
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from sluicegate.errors import GatewayError
from sluicegate.telemetry import spool as spool_module
from sluicegate.telemetry.ledger import Ledger, LedgerGuard
from sluicegate.telemetry.spool import Spool
from tests.ledger.test_ledger import FlakyTable, ctx, wait_for


class FullDisk:
    """Stands in for os.write in the spool: while `full`, writes part of the line, then fails as ENOSPC."""

    def __init__(self) -> None:
        self.full = False
        self.real = os.write

    def __call__(self, fd: int, data: bytes) -> int:
        if not self.full:
            return self.real(fd, data)
        if len(data) > 8:
            return self.real(fd, data[: len(data) // 2])  # a short write: half a line reaches the file
        raise OSError(errno.ENOSPC, "No space left on device")


@pytest.fixture
def disk(monkeypatch: pytest.MonkeyPatch) -> FullDisk:
    fake = FullDisk()
    monkeypatch.setattr(spool_module.os, "write", fake)
    return fake


def spooled_lines(spool: Spool) -> list[dict[str, Any]]:
    lines = []
    for segment in spool.segments():
        data = (spool.directory / f"{segment:012d}.jsonl").read_bytes()
        assert not data or data.endswith(b"\n"), "a torn line was left at the end of a segment"
        lines.extend(orjson.loads(line) for line in data.splitlines() if line)  # every line whole
    return lines


async def test_enospc_leaves_no_torn_line_holds_records_and_refuses_until_it_recovers(
    tmp_path: Path, disk: FullDisk
) -> None:
    spool = Spool(tmp_path)
    spool.open()
    table = FlakyTable()
    table.down = True  # the database is away too: the spool is the only place for the records
    alerts: list[str] = []
    ledger = Ledger(spool, table, batch_size=10, reserve_bytes=0, alert=lambda event, *_: alerts.append(event))  # type: ignore[arg-type]
    await ledger.start()
    try:
        for n in range(5):
            await ledger.on_finish(ctx(n))
        disk.full = True
        for n in range(5, 8):
            await ledger.on_finish(ctx(n))  # the request that finishes is never failed for it
        assert ledger.held_records() == 3 and not ledger.accepting
        assert alerts == ["ledger_spool_pressure"]
        with pytest.raises(GatewayError) as refused:
            await LedgerGuard(ledger).on_request(ctx(99))
        assert (refused.value.status, refused.value.code) == (503, "ledger_unavailable")
        assert refused.value.headers["retry-after"]
        assert [r["request_id"] for r in spooled_lines(spool)] == [f"req_{n:05d}" for n in range(5)]

        disk.full = False  # space is back: the held records go to the spool, and requests are served again
        await wait_for(lambda: ledger.accepting, timeout=5)
        assert ledger.held_records() == 0
        assert sorted(r["request_id"] for r in spooled_lines(spool)) == [f"req_{n:05d}" for n in range(8)]
        await ledger.on_finish(ctx(8))
        table.down = False
        await wait_for(lambda: len(table.rows) == 9)
        assert sorted(table.rows) == [f"req_{n:05d}" for n in range(9)]
    finally:
        disk.full = False
        await ledger.stop()
        spool.close()


async def test_records_the_spool_cannot_take_go_straight_to_a_reachable_database(
    tmp_path: Path, disk: FullDisk
) -> None:
    spool = Spool(tmp_path)
    spool.open()
    table = FlakyTable()
    ledger = Ledger(spool, table, batch_size=10, reserve_bytes=0)  # type: ignore[arg-type]
    await ledger.start()
    try:
        disk.full = True
        for n in range(4):
            await ledger.on_finish(ctx(n))
        await wait_for(lambda: len(table.rows) == 4)
        assert ledger.held_records() == 0
        assert not ledger.accepting  # the disk is still full: new requests wait for it
        disk.full = False
        await wait_for(lambda: ledger.accepting, timeout=5)
    finally:
        disk.full = False
        await ledger.stop()
        spool.close()


async def test_policy_serve_keeps_serving_but_still_says_so(tmp_path: Path, disk: FullDisk) -> None:
    spool = Spool(tmp_path)
    spool.open()
    table = FlakyTable()
    table.down = True
    ledger = Ledger(spool, table, batch_size=10, reserve_bytes=0, full_policy="serve")  # type: ignore[arg-type]
    await ledger.start()
    try:
        disk.full = True
        await ledger.on_finish(ctx(1))
        assert ledger.accepting and ledger.spool_trouble and ledger.held_records() == 1
    finally:
        disk.full = False
        await ledger.stop()
        spool.close()


async def test_a_disk_under_the_reserve_refuses_before_anything_fails(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.open()
    ledger = Ledger(spool, FlakyTable(), reserve_bytes=spool.free_bytes() * 2)  # type: ignore[arg-type]
    await ledger.start()
    try:
        await wait_for(lambda: not ledger.accepting, timeout=5)
        assert ledger.spool_free_bytes is not None
    finally:
        await ledger.stop()
        spool.close()


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A real 512 KiB tmpfs (needs root and mount rights; skipped otherwise)."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root: the injected-ENOSPC tests cover the same paths")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode(errors='replace').strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


async def test_a_real_full_tmpfs_loses_nothing_and_recovers(small_tmpfs: Path) -> None:
    spool = Spool(small_tmpfs, segment_bytes=64 * 1024)
    spool.open()
    table = FlakyTable()
    table.down = True
    ledger = Ledger(spool, table, batch_size=50, reserve_bytes=16 * 1024)  # type: ignore[arg-type]
    await ledger.start()
    served = 0
    try:
        for n in range(4000):
            try:
                await LedgerGuard(ledger).on_request(ctx(n))
            except GatewayError:
                break  # refused before being served: the client gets 503 ledger_unavailable
            await ledger.on_finish(ctx(n))
            served += 1
            if n % 50 == 0:
                ledger._tended = 0.0  # let the writer look at the disk now (it does every second)
                await asyncio.sleep(0.01)
        assert served < 4000, "the 512 KiB disk filled and requests were refused"
        spooled = spooled_lines(spool)  # no torn line anywhere
        assert len(spooled) + ledger.held_records() == served
        table.down = False  # the database is back: the spool drains, segments are freed, space returns
        await wait_for(lambda: len(table.rows) == served, timeout=30)
        await wait_for(lambda: ledger.accepting, timeout=10)
        assert ledger.lost == 0
    finally:
        await ledger.stop()
        spool.close()
