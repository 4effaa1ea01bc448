"""The live view, rendered from a read model the pipeline wrote, and the demo's last screen."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from streams.cli import commands
from streams.cli.live import WIDTH, final_view, render, render_sales_vs_service
from streams.db.repository import Repository
from streams.pipeline.service import Pipeline
from streams.settings import Settings
from tests.streams.db.test_queries import IN_MARCH, SALES_AND_SERVICE, WON_IN_TWO_CURRENCIES
from tests.support import TOPICS, event, messages_for, migrated


def settings_with(sqlite_url: str, tmp_path: Path, events: list[dict[str, Any]], **options: Any) -> Settings:
    """Settings on a read model the pipeline wrote from ``events``."""
    pipeline = Pipeline(Repository(migrated(sqlite_url)), TOPICS)
    assert not pipeline.process(messages_for(events)).dead_letters
    return Settings(database_url=SecretStr(sqlite_url), data_dir=tmp_path, **options)


def test_the_live_view_shows_each_currencys_revenue_apart(sqlite_url: str, tmp_path: Path) -> None:
    """It showed one sum of every currency's amounts: EUR 12,000.50 and USD 3,500 as 15,500.50."""
    settings = Settings(database_url=SecretStr(sqlite_url), data_dir=tmp_path)
    pipeline = Pipeline(Repository(migrated(sqlite_url)), TOPICS)
    assert "revenue won, every kind: none" in render(settings).splitlines()
    pipeline.process(messages_for(WON_IN_TWO_CURRENCIES))
    lines = render(settings).splitlines()
    assert "revenue won, every kind: EUR 12,000.50 · USD 3,500.00" in lines
    assert "  deals won           3" in (line[:23] for line in lines)
    assert "  win rate            75.0% (1 lost)" in (line.split(" | ")[0].rstrip() for line in lines)


# SALES_AND_SERVICE in March 2026, the retention period a month in UTC (the defaults)
SALES_VS_SERVICE = """\
Sales vs Service (retention period: the month from 2026-03-01, UTC)
Sales                                            | Service
-------------------------------------------------+--------------------------------------------------
  deals won           5                          |   CSAT (share of 4-5) 100.0% of 1 ratings
  win rate            83.3% (1 lost)             |   first-contact (FCR) 100.0%
  conversion          66.7% of 3 leads           |   NPS                 +25.0 over 4 customers
  new business won    EUR 3,000.00               |                       promoters 2
                      USD 500.00                 |                       detractors 1
                                                 |   churned customers   2 now
                                                 |   churns              2 in all
                                                 |   churn rate, month   50.0%
                                                 |                       1 churns, 2 at start
                                                 |   revenue retention   EUR 30.0%
                                                 |                       USD 40.0%
                                                 |   renewal + expansion EUR 300.00
                                                 |                       USD 200.00
                                                 |   referral revenue    USD 700.00
                                                 |   open tickets        0
-------------------------------------------------+--------------------------------------------------
revenue won, every kind: EUR 3,300.00 · USD 700.00"""


def test_the_live_view_sets_sales_against_service(sqlite_url: str, tmp_path: Path) -> None:
    settings = settings_with(sqlite_url, tmp_path, SALES_AND_SERVICE)
    screen = render(settings, now=IN_MARCH)
    assert screen.endswith("\n\n" + SALES_VS_SERVICE)
    assert "  churned              2  " + "#" * 20 in screen.splitlines()  # 2 of the 4 customers
    assert render_sales_vs_service(settings, now=IN_MARCH) == SALES_VS_SERVICE
    assert max(len(line) for line in screen.splitlines()) <= WIDTH


def column(screen: str, side: int) -> list[str]:
    """The Sales (0) or Service (1) column's lines of a screen, right-stripped."""
    return [line.split(" | ")[side].rstrip() for line in screen.splitlines() if " | " in line]


def test_the_sales_column_has_the_teams_quota_attainment_when_quotas_are_known(sqlite_url: str, tmp_path: Path) -> None:
    """Won revenue of the quota period in the quota's currency / the sum of the quotas, as the per-owner
    gauges count it: owners without a quota above 0 are in no ratio."""
    quotas = tmp_path / "quotas.json"
    quotas.write_text(json.dumps({"period": "quarter", "currency": "EUR", "quotas": {"ana": 4000, "bob": 1000}}))
    events = [*SALES_AND_SERVICE, event("deal.won", "c-9", deal_id="d-9", amount=700, owner="eve")]
    settings = settings_with(sqlite_url, tmp_path, events, quota_file=quotas)
    # ana won EUR 1,000 + 300 + 2,000 in the first quarter (and USD, in no ratio); eve has no quota
    sales = column(render(settings, now=IN_MARCH), 0)
    assert sales[sales.index("  quota attainment    66.0% of EUR 5,000.00") + 1] == "                      this quarter"
    assert "  quota attainment" not in "\n".join(column(render(settings.model_copy(update={"quota_file": None})), 0))


def test_the_retention_period_and_zone_come_from_the_settings(sqlite_url: str, tmp_path: Path) -> None:
    settings = settings_with(
        sqlite_url, tmp_path, SALES_AND_SERVICE, retention_period="quarter", quota_timezone="Europe/Paris"
    )
    screen = render(settings, now=IN_MARCH)
    assert "Sales vs Service (retention period: the quarter from 2026-01-01, Europe/Paris)" in screen
    service = column(screen, 1)
    # no customer at the quarter's start and nothing won in the one before: no ratio
    at = service.index("  churn rate, quarter n/a")
    assert service[at + 1 : at + 3] == ["                      2 churns, 0 at start", "  revenue retention   n/a"]


def test_the_demo_ends_on_sales_vs_service(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Once the worker and the simulator are stopped, the last thing the demo prints is the comparison."""
    settings = settings_with(sqlite_url, tmp_path, SALES_AND_SERVICE, kafka_bootstrap_servers="127.0.0.1:1")
    started: list[list[str]] = []

    class Child:
        def __init__(self, argv: list[str], **_: object) -> None:
            started.append(argv)

        def poll(self) -> int | None:
            return None

        def terminate(self) -> None:
            pass

        def wait(self, timeout: float) -> int:
            return 0

    monkeypatch.setattr(commands, "_settings", lambda: settings)
    monkeypatch.setattr("subprocess.Popen", Child)
    now = datetime.now(UTC)
    args = argparse.Namespace(customers=10, rate=1.0, seed=1, csat_dip=0.0, duration=0.001)
    assert commands.cmd_demo(args) == 0
    assert [argv[3] for argv in started] == ["worker", "simulate"]
    output = capsys.readouterr().out
    assert "customer-lifecycle: live view" in output
    final = output.rsplit("customer-lifecycle demo: final figures\n\n", 1)[1]
    assert final == render_sales_vs_service(settings, now=now) + "\n"


def test_the_final_view_waits_for_an_unreachable_read_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings(database_url=SecretStr(f"sqlite:///{tmp_path / 'missing' / 'lifecycle.db'}"), data_dir=tmp_path)
    final_view(settings)
    assert capsys.readouterr().out.rstrip().endswith("waiting for the read model (OperationalError)")
