"""The wall clock the key checks and the ledger read, as a function (the gateway hands them its one
clock's `now`, `sluicegate.clock`), injectable so expiry is testable without sleeping; UTC helpers."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

Clock = Callable[[], float]  # seconds since the epoch


def system_clock() -> float:
    return time.time()


def utc(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def as_utc(moment: dt.datetime) -> dt.datetime:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)
