"""Sales quotas per owner and period, from the operator's JSON file (``LIFECYCLE_QUOTA_FILE``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from streams.domain.errors import ConfigurationError


@dataclass(frozen=True)
class Quotas:
    """Sales quotas per owner for the current period, from a JSON file (its format: docs/metrics.md)."""

    period: str  # "month" | "quarter" | "year"
    currency: str
    by_owner: dict[str, float]

    @classmethod
    def load(cls, path: Path) -> Quotas:
        doc = json.loads(path.read_text())
        period = doc.get("period", "month")
        if period not in ("month", "quarter", "year"):
            raise ConfigurationError(f"quota period must be month, quarter or year, not {period!r}")
        return cls(period, doc["currency"], {str(k): float(v) for k, v in doc["quotas"].items()})

    def period_start(self, now: datetime) -> datetime:
        month = {"month": now.month, "quarter": 3 * ((now.month - 1) // 3) + 1, "year": 1}[self.period]
        return datetime(now.year, month, 1)
