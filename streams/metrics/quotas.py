"""Sales quotas per owner and period, from the operator's JSON file (``LIFECYCLE_QUOTA_FILE``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

from streams.domain.errors import ConfigurationError
from streams.domain.periods import PERIOD_UNITS, period_bounds


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
        if period not in PERIOD_UNITS:
            raise ConfigurationError(f"quota period must be month, quarter or year, not {period!r}")
        return cls(period, doc["currency"], {str(k): float(v) for k, v in doc["quotas"].items()}, ZoneInfo(zone))

    def period_bounds(self, now: datetime) -> tuple[datetime, datetime]:
        """``[start, end)`` of the quota period holding the aware ``now``, as naive UTC."""
        return period_bounds(self.period, self.zone, now)
