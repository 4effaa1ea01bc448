"""Quota periods: bounded by local midnights of the configured zone, returned as naive UTC."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from streams.metrics.quotas import Quotas
from streams.settings import Settings


def quotas(period: str, zone: str = "UTC") -> Quotas:
    return Quotas(period, "EUR", {"ana": 1000.0}, ZoneInfo(zone))


@pytest.mark.parametrize(
    ("period", "now", "bounds"),
    [
        ("month", "2026-12-31T23:59:59+00:00", ("2026-12-01T00:00:00", "2027-01-01T00:00:00")),
        ("quarter", "2026-01-01T00:00:00+00:00", ("2026-01-01T00:00:00", "2026-04-01T00:00:00")),
        ("quarter", "2026-09-30T12:00:00+00:00", ("2026-07-01T00:00:00", "2026-10-01T00:00:00")),
        ("quarter", "2026-10-01T00:00:00+00:00", ("2026-10-01T00:00:00", "2027-01-01T00:00:00")),
        ("year", "2026-06-15T00:00:00+00:00", ("2026-01-01T00:00:00", "2027-01-01T00:00:00")),
    ],
)
def test_a_period_is_the_half_open_interval_up_to_the_next_start(
    period: str, now: str, bounds: tuple[str, str]
) -> None:
    start, end = quotas(period).period_bounds(datetime.fromisoformat(now))
    assert (start.isoformat(), end.isoformat()) == bounds


def test_a_period_is_bounded_by_local_midnights_in_naive_utc() -> None:
    """Auckland's Q2 starts at midnight NZDT (UTC+13) and ends at midnight NZST (UTC+12)."""
    start, end = quotas("quarter", "Pacific/Auckland").period_bounds(datetime(2026, 3, 31, 12, tzinfo=UTC))
    assert (start, end) == (datetime(2026, 3, 31, 11), datetime(2026, 6, 30, 12))
    assert start.tzinfo is None and end.tzinfo is None


def test_now_must_say_its_zone() -> None:
    with pytest.raises(ValueError, match="aware"):
        quotas("month").period_bounds(datetime(2026, 3, 31, 12))


def test_load_takes_the_zone_by_its_iana_name(tmp_path: Path) -> None:
    path = tmp_path / "quotas.json"
    path.write_text(json.dumps({"period": "month", "currency": "EUR", "quotas": {"ana": 1000}}))
    assert Quotas.load(path).zone == ZoneInfo("UTC")
    assert Quotas.load(path, "Europe/Paris").zone == ZoneInfo("Europe/Paris")


def test_the_quota_time_zone_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LIFECYCLE_QUOTA_TIMEZONE", raising=False)
    assert Settings().quota_timezone == "UTC"
    monkeypatch.setenv("LIFECYCLE_QUOTA_TIMEZONE", "Europe/Paris")
    assert Settings().quota_timezone == "Europe/Paris"


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "America", "", "../etc/passwd", "/etc/localtime"])
def test_an_unknown_quota_time_zone_stops_the_start_up(monkeypatch: pytest.MonkeyPatch, zone: str) -> None:
    monkeypatch.setenv("LIFECYCLE_QUOTA_TIMEZONE", zone)
    with pytest.raises(ValidationError, match="unknown IANA time zone"):
        Settings()
