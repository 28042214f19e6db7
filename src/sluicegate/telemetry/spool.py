"""The on-disk, append-only spool of ledger records not yet known to be in the database.

Each record is one JSON line, appended with a single `write` to the current segment file, so it is in the
kernel's page cache before the request finishes: a killed process loses nothing. `fsync` policy: "always"
(each record, survives power loss, slow), "interval" (default: at most every N seconds, so a power loss can
cost the last interval) or "never" (the kernel decides). A reader follows the segments in order; a segment
is deleted only once it has been rotated out and every record in it is in the database. Several gateway
processes never share a segment: each takes the first unlocked `instance-N` folder under the spool
directory, and so a restarted gateway adopts what a killed one left behind.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson

log = logging.getLogger("sluicegate.ledger")

FsyncPolicy = Literal["always", "interval", "never"]
_SUFFIX = ".jsonl"


def _sync_and_close(fds: list[int], sync: bool) -> None:
    for fd in fds:
        try:
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)


@dataclass(slots=True)
class Cursor:
    segment: int
    offset: int


class Spool:
    def __init__(
        self,
        root: str | Path,
        *,
        fsync: FsyncPolicy = "interval",
        fsync_interval: float = 1.0,
        segment_bytes: int = 4 * 1024 * 1024,
    ) -> None:
        self.root = Path(root)
        self._fsync = fsync
        self._fsync_interval = fsync_interval
        self._segment_bytes = segment_bytes
        self._lock_fd = -1
        self._fd = -1
        self.directory = Path()
        self.segment = 0
        self._size = 0
        self._dirty = False
        self._last_sync = 0.0
        self._retired: list[int] = []
        self._oldest = 0  # the oldest segment that may still be on disk
        self.appended = 0
        # The request-id prefix of this process (set before `open`), and those of the processes whose
        # folders it took over: their streams' in-flight rows are closed once their segments are replayed.
        self.owner: dict[str, Any] | None = None
        self.dead_owners: list[dict[str, Any]] = []

    # -- lifecycle ------------------------------------------------------------------------------------

    def open(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        for n in range(1024):
            directory = self.root / f"instance-{n}"
            directory.mkdir(exist_ok=True)
            fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self._lock_fd = fd
            self.directory = directory
            break
        else:
            raise RuntimeError(f"no free spool folder under {self.root}")
        segments = self.segments()
        self.segment = (segments[-1] + 1) if segments else 1
        self._take_owners(self.directory)
        self._adopt_orphans()
        self._open_segment()
        self._oldest = self.segments()[0]
        self._write_owners()

    def _take_owners(self, directory: Path) -> None:
        """The owners a folder records (the process that last held it, and the dead ones it had taken over
        and not yet closed): all gone, since the folder's lock was free."""
        for name in (".owner", ".dead-owners"):
            try:
                data = orjson.loads((directory / name).read_bytes())
            except (OSError, orjson.JSONDecodeError):
                continue
            for owner in data if isinstance(data, list) else [data]:
                if isinstance(owner, dict) and isinstance(owner.get("prefix"), str) and owner != self.owner:
                    self.dead_owners.append(owner)
            if directory != self.directory:
                (directory / name).unlink(missing_ok=True)

    def _write_owners(self) -> None:
        if self.owner is not None:
            (self.directory / ".owner").write_bytes(orjson.dumps(self.owner))
        self.forget_dead_owners(done=[])

    def forget_dead_owners(self, done: list[dict[str, Any]]) -> None:
        """The owners whose in-flight rows are closed are forgotten; the rest stay on disk until they are."""
        self.dead_owners = [owner for owner in self.dead_owners if owner not in done]
        path = self.directory / ".dead-owners"
        if self.dead_owners:
            path.write_bytes(orjson.dumps(self.dead_owners))
        else:
            path.unlink(missing_ok=True)

    def _adopt_orphans(self) -> None:
        """Moves the segments of folders no live process holds (a killed instance's) behind our own, so
        they are replayed too, in their order, even when fewer instances come back than went down."""
        for other in sorted(self.root.glob("instance-*")):
            if other == self.directory or not other.is_dir():
                continue
            fd = os.open(other / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue  # a live instance
            try:
                for path in sorted(other.glob(f"*{_SUFFIX}")):
                    path.rename(self._path(self.segment))
                    self.segment += 1
                self._take_owners(other)
            finally:
                os.close(fd)

    def close(self) -> None:
        for fd in [*self._retired, self._fd]:
            if fd >= 0:
                if self._fsync != "never":
                    os.fsync(fd)
                os.close(fd)
        self._retired.clear()
        self._fd = -1
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = -1

    # -- writing --------------------------------------------------------------------------------------

    def append(self, record: dict[str, Any]) -> Cursor:
        """Writes the record and returns the cursor just after it. On a failed write (a full disk, an I/O
        error) nothing of it stays in the file: a torn line is cut off again, so the next record starts on a
        line of its own, and the OSError is raised for the caller to handle."""
        line = orjson.dumps(record) + b"\n"
        try:
            written = os.write(self._fd, line)
        except OSError:
            self._cut_torn_line()
            raise
        if written != len(line):
            self._finish_line(line, written)
        self._size += len(line)
        self.appended += 1
        if self._fsync == "always":
            os.fsync(self._fd)
        else:
            self._dirty = True
        if self._size >= self._segment_bytes:
            try:
                self.rotate()
            except OSError as exc:  # the record is written; the segment just grows until a rotation works
                log.warning("could not start a new spool segment: %s", type(exc).__name__)
            else:
                return Cursor(self.segment, 0)
        return Cursor(self.segment, self._size)

    def _finish_line(self, line: bytes, written: int) -> None:
        """A short write (the disk filled mid-line): writes the rest, or removes the fragment and raises."""
        try:
            while written < len(line):
                n = os.write(self._fd, line[written:])
                if n <= 0:
                    raise OSError(errno.ENOSPC, "no space left for the spool")
                written += n
        except OSError:
            self._cut_torn_line()
            raise

    def _cut_torn_line(self) -> None:
        try:
            if os.fstat(self._fd).st_size == self._size:
                return  # nothing of the line reached the file
            os.ftruncate(self._fd, self._size)  # freeing space never needs space
        except OSError:
            # The fragment stays: end it, so it is one unreadable line the reader skips, not the start of
            # the next record; failing that, a fresh segment keeps it apart.
            try:
                os.write(self._fd, b"\n")
                self._size = os.fstat(self._fd).st_size
            except OSError:
                self.rotate()

    def probe(self, size: int = 4096) -> None:
        """Writes `size` bytes beside the segments and removes them: raises OSError while the disk cannot take
        a record (full, read-only, failing), whatever its free-space figure says."""
        path = self.directory / ".probe"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            if os.write(fd, b"\0" * size) != size:
                raise OSError(errno.ENOSPC, "the spool's disk took only part of a probe")
        finally:
            os.close(fd)
            path.unlink(missing_ok=True)

    def free_bytes(self) -> int:
        """Free space on the spool's filesystem for this process."""
        stats = os.statvfs(self.directory)
        return stats.f_bavail * stats.f_frsize

    async def sync_if_due(self, now: float | None = None) -> None:
        """Called by the ledger's writer loop: fsyncs (under "interval", at most every interval) and closes
        rotated-out segments, in a worker thread, so a slow disk never stalls the event loop."""
        retired, self._retired = self._retired, []
        fds = list(retired)
        now = time.monotonic() if now is None else now
        if (
            self._fsync == "interval"
            and self._dirty
            and self._fd >= 0
            and now - self._last_sync >= self._fsync_interval
        ):
            fds.append(os.dup(self._fd))  # a rotation may close the original meanwhile
            self._dirty = False
            self._last_sync = now
        if fds:
            await asyncio.to_thread(_sync_and_close, fds, self._fsync != "never")

    def rotate(self) -> None:
        old = self._fd
        self.segment += 1
        try:
            self._open_segment()  # first, so that a failure (a full disk) leaves the current segment in use
        except OSError:
            self.segment -= 1
            raise
        if self._fsync == "always":
            os.fsync(old)
            os.close(old)
        else:
            self._retired.append(old)  # fsynced and closed by the writer, off the request path

    def _open_segment(self) -> None:
        path = self._path(self.segment)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._size = os.fstat(self._fd).st_size
        self._dirty = False

    # -- reading --------------------------------------------------------------------------------------

    def segments(self) -> list[int]:
        return sorted(int(p.name[: -len(_SUFFIX)]) for p in self.directory.glob(f"*{_SUFFIX}"))

    def _path(self, segment: int) -> Path:
        return self.directory / f"{segment:012d}{_SUFFIX}"

    def start(self) -> Cursor:
        segments = self.segments()
        return Cursor(segments[0] if segments else self.segment, 0)

    def read(self, cursor: Cursor, limit: int) -> tuple[list[dict[str, Any]], Cursor]:
        """Up to `limit` whole records from `cursor` on, and the cursor after them. Skips finished segments."""
        records: list[dict[str, Any]] = []
        segment, offset = cursor.segment, cursor.offset
        while len(records) < limit:
            path = self._path(segment)
            data = b""
            if path.exists():
                with path.open("rb") as handle:
                    handle.seek(offset)
                    data = handle.read(256 * 1024)
            end = data.rfind(b"\n")
            if end < 0:
                if segment < self.segment:  # a rotated-out segment read to its end: go on to the next
                    segment, offset = segment + 1, 0
                    continue
                break
            consumed = 0
            for line in data[: end + 1].split(b"\n")[:-1]:
                consumed += len(line) + 1
                if not line:
                    continue
                try:
                    records.append(orjson.loads(line))
                except orjson.JSONDecodeError:
                    log.error("skipping a torn spool line in %s at byte %d", path.name, offset + consumed)
                if len(records) >= limit:
                    break
            offset += consumed
        return records, Cursor(segment, offset)

    def release_before(self, cursor: Cursor) -> None:
        """Deletes the segments wholly before `cursor`: every record in them is in the database."""
        end = min(cursor.segment, self.segment)
        for segment in range(self._oldest, end):
            self._path(segment).unlink(missing_ok=True)
        self._oldest = max(self._oldest, end)

    @property
    def rejected_path(self) -> Path:
        return self.directory / "rejected.log"

    def reject(self, record: dict[str, Any], reason: str) -> None:
        """Keeps a record the database refused (bad data, not an outage) for an operator to look at."""
        with self.rejected_path.open("ab") as handle:
            handle.write(orjson.dumps({"reason": reason, "record": record}) + b"\n")

    def caught_up(self, cursor: Cursor) -> bool:
        return cursor.segment == self.segment and cursor.offset >= self._size

    @property
    def size(self) -> int:
        return self._size

    def pending_bytes(self, cursor: Cursor) -> int:
        total = 0
        for segment in self.segments():
            if segment >= cursor.segment:
                size = self._path(segment).stat().st_size
                total += size - (cursor.offset if segment == cursor.segment else 0)
        return total
