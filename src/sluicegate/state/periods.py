"""Budget periods: which period a moment falls in, in a configured time zone, and when it ends."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from sluicegate.state.config import Period


def period_bounds(period: Period, now: float, zone: ZoneInfo) -> tuple[str, float | None]:
    """(period id, end of the period as epoch seconds; None for `total`)."""
    if period == "total":
        return "total", None
    local = dt.datetime.fromtimestamp(now, zone)
    if period == "daily":
        start = local.replace(hour=0, minute=0, second=0, microsecond=0)
        end_date = start.date() + dt.timedelta(days=1)
        ident = start.strftime("%Y-%m-%d")
    elif period == "weekly":
        monday = local.date() - dt.timedelta(days=local.weekday())
        end_date = monday + dt.timedelta(days=7)
        iso = monday.isocalendar()
        ident = f"{iso.year}-W{iso.week:02d}"
    else:
        first = local.date().replace(day=1)
        end_date = (first + dt.timedelta(days=32)).replace(day=1)
        ident = first.strftime("%Y-%m")
    end = dt.datetime.combine(end_date, dt.time(), tzinfo=zone)  # midnight local, DST-correct
    return f"{period[0]}{ident}", end.timestamp()


def period_start(period_id: str, zone: ZoneInfo) -> float | None:
    """When the period named `period_id` (as `period_bounds` names it) began, as epoch seconds; None for
    `total`, which has no start."""
    if period_id == "total":
        return None
    kind, ident = period_id[0], period_id[1:]
    if kind == "d":
        first = dt.date.fromisoformat(ident)
    elif kind == "w":
        year, week = ident.split("-W")
        first = dt.date.fromisocalendar(int(year), int(week), 1)
    elif kind == "m":
        first = dt.date.fromisoformat(ident + "-01")
    else:
        raise ValueError(f"not a budget period id: {period_id!r}")
    return dt.datetime.combine(first, dt.time(), tzinfo=zone).timestamp()
