"""Sales quotas per owner and period, from the operator's JSON file (``LIFECYCLE_QUOTA_FILE``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

from streams.domain.errors import ConfigurationError


@dataclass(frozen=True)
class Quotas:
    """Sales quotas per owner for the current period, from a JSON file (its format: docs/metrics.md)."""

    period: str  # "month" | "quarter" | "year"
    currency: str
    by_owner: dict[str, float]
    zone: tzinfo = UTC  # where the period's boundaries are midnights (``LIFECYCLE_QUOTA_TIMEZONE``)

    @classmethod
    def load(cls, path: Path, zone: str = "UTC") -> Quotas:
        """``zone`` is an IANA name, validated by the settings (an unknown one stops the start-up)."""
        doc = json.loads(path.read_text())
        period = doc.get("period", "month")
        if period not in ("month", "quarter", "year"):
            raise ConfigurationError(f"quota period must be month, quarter or year, not {period!r}")
        return cls(period, doc["currency"], {str(k): float(v) for k, v in doc["quotas"].items()}, ZoneInfo(zone))

    def period_bounds(self, now: datetime) -> tuple[datetime, datetime]:
        """``[start, end)`` of the period holding the aware ``now``, as naive UTC (the database's times).

        The boundaries are local midnights of the zone (a quarter starts on Jan 1, Apr 1, Jul 1, Oct 1),
        so a period's length in UTC follows the zone's daylight saving time."""
        if now.tzinfo is None:
            raise ValueError("now must be an aware datetime")
        local = now.astimezone(self.zone)
        months = {"month": 1, "quarter": 3, "year": 12}[self.period]
        first = local.year * 12 + (local.month - 1) // months * months  # months since year 0, of the start
        start, end = (datetime(m // 12, m % 12 + 1, 1, tzinfo=self.zone) for m in (first, first + months))
        return _naive_utc(start), _naive_utc(end)


def _naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)
