"""Budget periods reset on boundaries of the configured time zone, DST included."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from sluicegate.state.periods import period_bounds, period_start

NY = ZoneInfo("America/New_York")


def at(text: str, zone: ZoneInfo) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=zone).timestamp()


def test_daily_resets_at_local_midnight() -> None:
    before = period_bounds("daily", at("2026-03-07T23:59:59", NY), NY)
    after = period_bounds("daily", at("2026-03-08T00:00:00", NY), NY)
    assert before[0] == "d2026-03-07" and after[0] == "d2026-03-08"
    assert before[1] == at("2026-03-08T00:00:00", NY)
    # 2026-03-08 has 23 hours in New York (DST starts): the period ends at the next local midnight
    assert after[1] is not None and after[1] - at("2026-03-08T00:00:00", NY) == 23 * 3600


def test_the_same_instant_is_in_different_days_in_different_zones() -> None:
    instant = at("2026-05-01T02:00:00", ZoneInfo("UTC"))
    assert period_bounds("daily", instant, ZoneInfo("UTC"))[0] == "d2026-05-01"
    assert period_bounds("daily", instant, NY)[0] == "d2026-04-30"
    assert period_bounds("monthly", instant, NY)[0] == "m2026-04"


def test_weekly_and_monthly_and_total() -> None:
    sunday = at("2026-01-04T12:00:00", NY)
    assert period_bounds("weekly", sunday, NY) == ("w2026-W01", at("2026-01-05T00:00:00", NY))
    assert period_bounds("monthly", at("2026-12-31T23:00:00", NY), NY) == ("m2026-12", at("2027-01-01T00:00:00", NY))
    assert period_bounds("total", sunday, NY) == ("total", None)


@pytest.mark.parametrize("period", ["daily", "weekly", "monthly"])
@pytest.mark.parametrize("zone", ["UTC", "America/New_York", "Asia/Kolkata"])
def test_period_start_is_where_the_period_named_by_its_id_begins(period: str, zone: str) -> None:
    tz = ZoneInfo(zone)
    for now in (1_767_225_600.0, 1_773_500_000.0, 1_796_189_679.0):  # around new year, a DST change, December
        period_id, end = period_bounds(period, now, tz)  # type: ignore[arg-type]
        start = period_start(period_id, tz)
        assert start is not None and end is not None and start <= now < end
        assert period_bounds(period, start, tz)[0] == period_id
        assert period_bounds(period, start - 1, tz)[0] != period_id
    assert period_start("total", tz) is None
