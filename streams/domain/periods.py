"""Calendar periods (month, quarter, year) whose boundaries are local midnights of a time zone: the
quota attainment and the retention figures are per period."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import Literal

PeriodUnit = Literal["month", "quarter", "year"]
PERIOD_UNITS: tuple[PeriodUnit, ...] = ("month", "quarter", "year")
_MONTHS = {"month": 1, "quarter": 3, "year": 12}


def period_bounds(unit: str, zone: tzinfo, now: datetime, *, offset: int = 0) -> tuple[datetime, datetime]:
    """``[start, end)`` of the period holding the aware ``now`` (``offset`` -1: the one before), as naive
    UTC (the database's times). A quarter starts on Jan 1, Apr 1, Jul 1, Oct 1; a period's length in UTC
    follows the zone's daylight saving time."""
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    local = now.astimezone(zone)
    months = _MONTHS[unit]
    first = local.year * 12 + (local.month - 1) // months * months + offset * months  # months since year 0
    start, end = (datetime(m // 12, m % 12 + 1, 1, tzinfo=zone) for m in (first, first + months))
    return naive_utc(start), naive_utc(end)


def naive_utc(moment: datetime) -> datetime:
    """An aware time as the pipeline holds every time: naive, in UTC."""
    return moment.astimezone(UTC).replace(tzinfo=None)
