"""The quota attainment gauge, on SQLite and PostgreSQL: one series per label, deals of the period only,
periods bounded in the quota's time zone."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from streams.db.models import Deal
from streams.db.repository import Repository
from streams.metrics.labels import OTHER_OWNER, BoundedLabel
from streams.metrics.quotas import Quotas
from streams.metrics.read_model import ReadModelCollector
from streams.pipeline.service import Pipeline
from tests.support import TOPICS, event, messages_for, migrated

ATTAINMENT = "lifecycle_quota_attainment_ratio"


def won_deals(database_url: str, *deals: tuple[str, float, str]) -> Engine:
    """A migrated database holding one won deal (owner, amount, won at) per customer."""
    engine = migrated(database_url)
    events = [
        event("deal.won", f"c-{i}", deal_id=f"d-{i}", owner=owner, amount=amount, at=at)
        for i, (owner, amount, at) in enumerate(deals)
    ]
    Pipeline(Repository(engine), TOPICS).process(messages_for(events))
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(Deal).where(Deal.status == "won")) == len(deals)
    return engine


def quota_file(tmp_path: Path, period: str, quotas: dict[str, float]) -> Path:
    path = tmp_path / "quotas.json"
    path.write_text(json.dumps({"period": period, "currency": "EUR", "quotas": quotas}))
    return path


def at(moment: str) -> Callable[[], datetime]:
    """A clock stopped at ``moment`` (ISO 8601 with its offset)."""
    return lambda: datetime.fromisoformat(moment)


def attainment(collector: ReadModelCollector) -> dict[str, float]:
    """The gauge's samples by owner, from a registry's exposition text (as Prometheus reads it)."""
    registry = CollectorRegistry()
    registry.register(collector)
    families = [f for f in text_string_to_metric_families(generate_latest(registry).decode()) if f.name == ATTAINMENT]
    return {sample.labels["owner"]: sample.value for family in families for sample in family.samples}


def test_owners_folded_into_other_are_one_series_with_their_sums_ratio(database_url: str, tmp_path: Path) -> None:
    """More reps in the quota file than owner labels emitted `other` once per folded rep: a scrape with
    duplicate series, which Prometheus refuses."""
    engine = won_deals(
        database_url,
        ("rep-0", 500, "2026-02-01T10:00:00Z"),
        ("rep-2", 1000, "2026-02-01T10:00:00Z"),
        ("rep-3", 2000, "2026-02-01T10:00:00Z"),
        ("rep-9", 5000, "2026-02-01T10:00:00Z"),  # no quota: in no ratio, though folded too
    )
    quotas = Quotas.load(quota_file(tmp_path, "quarter", {"rep-0": 1000, "rep-1": 1000, "rep-2": 2000, "rep-3": 4000}))
    collector = ReadModelCollector(engine, quotas, BoundedLabel(2), clock=at("2026-03-15T12:00:00+00:00"))

    series = Counter(
        (sample.name, tuple(sorted(sample.labels.items())))
        for family in collector.collect()
        for sample in family.samples
    )
    assert [key for key, count in series.items() if count > 1] == []
    assert attainment(collector) == {"rep-0": 0.5, "rep-1": 0.0, OTHER_OWNER: (1000 + 2000) / (2000 + 4000)}


def test_only_deals_won_within_the_current_period_count(database_url: str, tmp_path: Path) -> None:
    """A deal won in year 9999 counted in every period: the query had a start and no end."""
    engine = won_deals(
        database_url,
        ("ana", 1, "2025-12-31T23:59:59Z"),  # the period before
        ("ana", 10, "2026-01-01T00:00:00Z"),  # the period's first instant
        ("ana", 100, "2026-03-31T23:59:59Z"),
        ("ana", 1000, "2026-04-01T00:00:00Z"),  # the next period's first instant
        ("ana", 10000, "9999-06-01T00:00:00Z"),
    )
    quotas = Quotas.load(quota_file(tmp_path, "quarter", {"ana": 1000}))
    collector = ReadModelCollector(engine, quotas, clock=at("2026-02-10T08:00:00+00:00"))
    assert attainment(collector) == {"ana": 110 / 1000}


def test_periods_start_at_midnight_in_the_quota_time_zone(database_url: str, tmp_path: Path) -> None:
    """Periods were bounded at UTC midnights: in Paris, April's first two hours counted in March."""
    engine = won_deals(
        database_url,
        ("ana", 700, "2026-03-31T21:45:00Z"),  # 23:45 on March 31 in Paris (CEST, UTC+2)
        ("ana", 300, "2026-03-31T22:15:00Z"),  # 00:15 on April 1 in Paris
    )
    quotas = Quotas.load(quota_file(tmp_path, "month", {"ana": 1000}), "Europe/Paris")
    april = ReadModelCollector(engine, quotas, clock=at("2026-04-01T00:30:00+02:00"))
    march = ReadModelCollector(engine, quotas, clock=at("2026-03-31T23:50:00+02:00"))
    assert attainment(april) == {"ana": 0.3}
    assert attainment(march) == {"ana": 0.7}


def samples(collector: ReadModelCollector, name: str, *labels: str) -> dict[tuple[str, ...], float]:
    """A gauge's samples by the values of ``labels``, from the exposition text (as Prometheus reads it)."""
    registry = CollectorRegistry()
    registry.register(collector)
    families = [f for f in text_string_to_metric_families(generate_latest(registry).decode()) if f.name == name]
    return {tuple(s.labels[label] for label in labels): s.value for family in families for s in family.samples}


def test_the_retention_period_s_churn_rate_revenue_retention_and_the_service_gauges(database_url: str) -> None:
    engine = migrated(database_url)
    documents = [
        event("deal.won", "c-1", deal_id="d-1", at="2026-01-10T00:00:00Z"),
        event("customer.churned", "c-1", at="2026-03-05T00:00:00Z"),  # the period's churn
        event("deal.won", "c-2", deal_id="d-2", amount=500, at="2026-01-15T00:00:00Z"),
        event("deal.won", "c-2", deal_id="d-3", amount=400, kind="renewal", at="2026-03-10T00:00:00Z"),
        event("deal.won", "c-3", deal_id="d-4", at="2026-02-20T00:00:00Z"),
        event("deal.won", "c-4", deal_id="d-5", at="2025-12-01T00:00:00Z"),
        event("customer.churned", "c-4", at="2026-01-20T00:00:00Z"),  # gone before the period
        event("deal.won", "c-5", deal_id="d-6", at="2026-01-01T00:00:00Z"),
        event("customer.churned", "c-5", at="2026-02-01T00:00:00Z"),
        event("deal.won", "c-5", deal_id="d-7", amount=300, at="2026-02-15T00:00:00Z"),  # won back
        event("deal.won", "c-8", deal_id="d-8", at="2024-01-01T00:00:00Z"),
        event("deal.won", "c-9", deal_id="d-9", at="2025-06-01T00:00:00Z"),
        event("ticket.opened", "c-2", ticket_id="t-1", at="2026-01-20T00:00:00Z"),
        event("csat.submitted", "c-2", ticket_id="t-1", score=5, at="2026-01-21T00:00:00Z"),
        event("lead.created", "c-6", channel="referral", referred_by="c-2", at="2026-02-01T00:00:00Z"),
        event("deal.won", "c-6", deal_id="d-10", at="2026-03-01T00:00:00Z"),
        event("lead.created", "c-7", channel="referral", referred_by="c-99", at="2026-02-01T00:00:00Z"),
        event("nps.submitted", "c-1", score=10, at="2026-01-11T00:00:00Z"),
        event("nps.submitted", "c-1", score=3, at="2026-02-11T00:00:00Z"),
        event("nps.submitted", "c-2", score=8, at="2026-02-11T00:00:00Z"),
    ]
    Pipeline(Repository(engine), TOPICS).process(messages_for(documents))
    collector = ReadModelCollector(engine, clock=at("2026-03-20T00:00:00+00:00"))
    # at the start of March: c-1, c-2, c-3, c-5 (won back), c-8, c-9; not c-4, churned in January
    assert samples(collector, "lifecycle_period_logo_churn_ratio") == {(): 1 / 6}
    # renewal 400 against February's 1,000 (c-3) + 300 (c-5); d-10 is c-6's first: new business
    assert samples(collector, "lifecycle_period_revenue_retention_ratio", "currency") == {("EUR",): 400 / 1300}
    tenure = samples(collector, "lifecycle_customers_by_tenure", "tenure")
    assert tenure == {("under_3m",): 4, ("3m_to_1y",): 1, ("1y_to_2y",): 0, ("over_2y",): 1}
    referred = {
        labels: n
        for labels, n in samples(collector, "lifecycle_referred_customers", "referrer_csat_band", "converted").items()
        if n
    }
    assert referred == {("high", "true"): 1, ("none", "false"): 1}
    assert samples(collector, "lifecycle_nps_customers", "category") == {
        ("promoter",): 0,
        ("passive",): 1,
        ("detractor",): 1,
    }
    # a quarter: January's start had c-4, c-8 and c-9 (the others converted later); c-1, c-4, c-5 churned in it
    quarter = ReadModelCollector(engine, clock=at("2026-03-20T00:00:00+00:00"), retention_period="quarter")
    assert samples(quarter, "lifecycle_period_logo_churn_ratio") == {(): 3 / 3}
