"""The ledger's SQLite inserts: on the event loop, a few rows a turn, with WAL checkpoints in a worker thread.

Why on the loop, and not in a thread of their own: on a core shared with the event loop, a second thread's
CPU work delays the loop's wake-ups by up to a scheduler tick (4 ms here), whatever its niceness, even
under SCHED_IDLE: on the development machine, at concurrency 1, a SCHED_IDLE process doing the same
inserts on that core took the requests served in over 1 ms from 17 to 115 per 6 s, and a SCHED_IDLE busy
loop to 54. A batch inserted a few rows per turn of the loop delays a request by one slice at most (tens
of µs), because nothing has to be preempted for the request to be served: the loop takes its next turn.
A batch is still one transaction (one commit per batch, not per slice).

The one part that does not slice is SQLite's checkpoint (copying the write-ahead log into the database
file, with its fsyncs), so the loop's connection never checkpoints on commit; a worker thread does, every
`checkpoint_rows` rows, and the WAL stays small.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy.exc import DataError, DBAPIError

log = logging.getLogger("sluicegate.ledger")

_FIRST_SLICE = 4  # rows: about 40 µs of SQLite work, what a request may wait behind while the loop is quiet
_SLICE_GROWS_AFTER = 0.01  # seconds into a batch: a busy loop gives few turns, so slices double from then on
_CHECKPOINT_ROWS = 500  # about 150 WAL pages: a checkpoint is a short burst, not a stall


def _lower_priority(nice: int) -> None:
    """Makes the calling thread yield to the event loop's on a shared core (Linux has per-thread niceness;
    elsewhere the id would name a process, so nothing is done)."""
    if nice and sys.platform == "linux":
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
        except OSError:
            pass  # not allowed here: the checkpoints run at the process's priority


def _busy(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


class SqliteWriter:
    """Inserts prepared rows with one statement (`sql`) into the SQLite file at `database`."""

    def __init__(
        self,
        database: str,
        sql: str,
        pragmas: Callable[[sqlite3.Connection, Any], None],
        *,
        timeout: float,
        checkpoint_nice: int = 0,
        checkpoint_rows: int = _CHECKPOINT_ROWS,
    ) -> None:
        self._database = database
        self._sql = sql
        self._pragmas = pragmas
        self._timeout = timeout
        self._checkpoint_nice = checkpoint_nice
        self._checkpoint_rows = checkpoint_rows
        self._connection: sqlite3.Connection | None = None  # the loop's
        self._checkpointer: sqlite3.Connection | None = None  # the worker thread's
        self._thread: ThreadPoolExecutor | None = None
        self._checkpoint: asyncio.Future[None] | None = None
        self._unchecked = 0  # rows committed since the last checkpoint began

    async def insert(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """One transaction, a slice of rows per turn of the loop. Errors come out as SQLAlchemy's, like every
        other store error; a cancelled or failed batch is rolled back whole (it is still in the spool)."""
        if self._checkpoint is not None and not self._checkpoint.done():
            # No commit while the WAL is being copied: once the copy is complete, the next transaction
            # starts the WAL from its beginning again, so it stays small under a constant stream of rows.
            await asyncio.wait([self._checkpoint])
        try:
            connection = self._connect()
            await self._begin(connection)
            try:
                loop = asyncio.get_running_loop()
                began = loop.time()
                start, size = 0, _FIRST_SLICE
                while True:
                    connection.executemany(self._sql, rows[start : start + size])
                    start += size
                    if start >= len(rows):
                        break
                    await asyncio.sleep(0)  # the loop's turn: requests waiting go first
                    if loop.time() - began > _SLICE_GROWS_AFTER:
                        size *= 2  # a busy loop: larger slices, so the ledger keeps pace with the requests
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.rollback()
                raise
        except sqlite3.Error as exc:
            if isinstance(exc, sqlite3.OperationalError) and not _busy(exc):
                self._close_connection()  # a fresh connection next time: the file may have moved
            raise DBAPIError.instance(self._sql, None, exc, sqlite3.Error) from exc
        except (ValueError, OverflowError) as exc:
            # a value the driver cannot bind (a lone surrogate, an integer past 64 bits): the rows are at fault,
            # not the database, so the ledger must not wait for it to "come back"
            raise DataError(self._sql, None, exc) from exc
        self._unchecked += len(rows)
        if self._unchecked >= self._checkpoint_rows and (self._checkpoint is None or self._checkpoint.done()):
            self._unchecked = 0
            self._checkpoint = asyncio.get_running_loop().run_in_executor(self._worker(), self._run_checkpoint)
            self._checkpoint.add_done_callback(_log_failure)

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            connection = sqlite3.connect(
                self._database, timeout=self._timeout, isolation_level=None, check_same_thread=False
            )
            self._pragmas(connection, None)
            connection.execute("PRAGMA wal_autocheckpoint=0")  # the worker thread checkpoints, never a commit
            connection.execute("PRAGMA busy_timeout=0")  # waiting for another writer is done by `_begin`, awaiting
            self._connection = connection
        return self._connection

    async def _begin(self, connection: sqlite3.Connection) -> None:
        """BEGIN IMMEDIATE, waiting (without blocking the loop) while another connection writes."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        delay = 0.002
        while True:
            try:
                connection.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if not _busy(exc) or loop.time() >= deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)

    def _worker(self) -> ThreadPoolExecutor:
        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, "ledger-checkpoint", _lower_priority, (self._checkpoint_nice,))
        return self._thread

    def _run_checkpoint(self) -> None:
        """In the worker thread: copies what the WAL holds into the database file (PASSIVE: it waits for
        nobody, and the loop's connection keeps writing meanwhile)."""
        if self._checkpointer is None:
            self._checkpointer = sqlite3.connect(self._database, timeout=self._timeout, check_same_thread=False)
            self._pragmas(self._checkpointer, None)
        self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def _close_connection(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _close_checkpointer(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.close()
            self._checkpointer = None

    async def close(self) -> None:
        if self._checkpoint is not None:
            await asyncio.gather(self._checkpoint, return_exceptions=True)
            self._checkpoint = None
        if self._thread is not None:
            thread, self._thread = self._thread, None
            await asyncio.get_running_loop().run_in_executor(thread, self._close_checkpointer)
            thread.shutdown(wait=True)
        self._close_connection()  # the last connection to close checkpoints what is left


def _log_failure(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("ledger WAL checkpoint failed (%s); the next one retries", type(future.exception()).__name__)
