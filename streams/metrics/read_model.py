"""Gauges that describe state (customers by stage and tenure, open tickets, quota attainment, referred
customers by their referrer's CSAT band, customers by their latest NPS answer, the retention period's
figures), read from the database at scrape time: a restarted worker reports them at once, and every
worker reports the same (aggregate them with max, not sum)."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, tzinfo

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, case, func, select
from sqlalchemy.orm import Session, aliased

from streams.contract.vocabulary import TICKET_CHANNELS
from streams.db.models import Customer, Deal, Ticket
from streams.db.retention import PeriodRetention, period_retention
from streams.domain.figures import NPS_CATEGORIES, PASSIVE_SCORE, PROMOTER_SCORE
from streams.domain.journey import UNKNOWN
from streams.domain.periods import naive_utc
from streams.domain.stages import CsatBand, Stage
from streams.metrics.labels import BoundedLabel
from streams.metrics.quotas import Quotas

# tenure label -> the days since the first won deal it is under (the last: all older ones)
TENURES = (("under_3m", 91), ("3m_to_1y", 365), ("1y_to_2y", 730), ("over_2y", 0))


class ReadModelCollector(Collector):
    """State gauges read from the database at scrape time (global state: aggregate with max, not sum)."""

    names = frozenset(
        (
            "lifecycle_customers",
            "lifecycle_customers_by_tenure",
            "lifecycle_tickets_open",
            "lifecycle_quota_attainment_ratio",
            "lifecycle_referred_customers",
            "lifecycle_nps_customers",
            "lifecycle_period_logo_churn_ratio",
            "lifecycle_period_revenue_retention_ratio",
        )
    )

    def __init__(
        self,
        engine: Engine,
        quotas: Quotas | None = None,
        owner: BoundedLabel | None = None,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        retention_period: str = "month",
        zone: tzinfo = UTC,
        retention_refresh_seconds: float = 60.0,
    ) -> None:
        """``clock`` gives the aware now that picks the quota and retention periods (a parameter for the
        tests). The retention figures read every won deal before the period: they are computed again at
        most every ``retention_refresh_seconds``, not at every scrape."""
        self.engine = engine
        self.quotas = quotas
        self.owner = owner or BoundedLabel(100)
        self.clock = clock
        self.retention_period = retention_period
        self.zone = zone
        self.retention_refresh_seconds = retention_refresh_seconds
        self._retention: tuple[float, PeriodRetention] | None = None

    def describe(self) -> Iterator[Metric]:
        """Names without a query, for a registry's bookkeeping."""
        for name in sorted(self.names):
            yield GaugeMetricFamily(name, "")

    def collect(self) -> Iterator[Metric]:
        customers = GaugeMetricFamily("lifecycle_customers", "Customers by current lifecycle stage.", labels=["stage"])
        open_tickets = GaugeMetricFamily("lifecycle_tickets_open", "Tickets currently open.", labels=["channel"])
        quota = GaugeMetricFamily(
            "lifecycle_quota_attainment_ratio",
            "Won revenue in the current quota period / the owner's quota ('other': of the folded owners).",
            labels=["owner"],
        )
        now = self.clock()
        with Session(self.engine) as session:
            by_stage = dict(
                session.execute(select(Customer.stage, func.count()).group_by(Customer.stage)).tuples().all()
            )
            by_channel = dict(
                session.execute(
                    select(Ticket.channel, func.count()).where(Ticket.status == "open").group_by(Ticket.channel)
                )
                .tuples()
                .all()
            )
            won: dict[str, float] = {}
            if self.quotas is not None:
                start, end = self.quotas.period_bounds(now)
                won = {
                    str(owner): float(total or 0)
                    for owner, total in session.execute(
                        select(Deal.owner, func.sum(Deal.amount))
                        .where(
                            Deal.status == "won",
                            Deal.won_at >= start,
                            Deal.won_at < end,
                            Deal.currency == self.quotas.currency,
                        )
                        .group_by(Deal.owner)
                    ).tuples()
                }
        for stage in Stage:
            customers.add_metric([stage.value], by_stage.get(stage.value, 0))
        for channel in (*TICKET_CHANNELS, UNKNOWN):
            open_tickets.add_metric([channel], by_channel.get(None if channel == UNKNOWN else channel, 0))
        if self.quotas is not None:
            # one series per label: owners folded into one label ('other') report their sums' ratio
            won_by_label: dict[str, float] = defaultdict(float)
            target_by_label: dict[str, float] = defaultdict(float)
            for owner, target in self.quotas.by_owner.items():
                if target > 0:
                    label = self.owner(owner)
                    won_by_label[label] += won.get(owner, 0.0)
                    target_by_label[label] += target
            for label, target in target_by_label.items():
                quota.add_metric([label], won_by_label[label] / target)
        yield customers
        yield open_tickets
        yield quota
        yield from self._service_outcomes(now)

    def _service_outcomes(self, now: datetime) -> Iterator[Metric]:
        tenure = GaugeMetricFamily(
            "lifecycle_customers_by_tenure",
            "Customers in customer or at_risk, by the time since their first won deal.",
            labels=["tenure"],
        )
        referred = GaugeMetricFamily(
            "lifecycle_referred_customers",
            "Customers a referral brought, by the referring customer's CSAT band now, and whether they converted.",
            labels=["referrer_csat_band", "converted"],
        )
        nps = GaugeMetricFamily(
            "lifecycle_nps_customers", "Customers by the category of their latest NPS answer.", labels=["category"]
        )
        naive_now = naive_utc(now)
        bucket = case(
            *((Customer.converted_at > naive_now - timedelta(days=days), label) for label, days in TENURES[:-1]),
            else_=TENURES[-1][0],
        )
        category = case(
            (Customer.nps_score >= PROMOTER_SCORE, "promoter"),
            (Customer.nps_score >= PASSIVE_SCORE, "passive"),
            else_="detractor",
        )
        referrer = aliased(Customer)
        referrer_band = func.coalesce(referrer.csat_band, CsatBand.NONE.value)
        converted = Customer.converted_at.is_not(None)
        with Session(self.engine) as session:
            by_tenure: dict[str, int] = dict(
                session.execute(
                    select(bucket, func.count())
                    .where(Customer.stage.in_((Stage.CUSTOMER.value, Stage.AT_RISK.value)), converted)
                    .group_by(bucket)
                )
                .tuples()
                .all()
            )
            by_band = {
                (str(band), bool(done)): int(count)
                for band, done, count in session.execute(
                    select(referrer_band, converted, func.count())
                    .select_from(Customer)
                    .outerjoin(referrer, referrer.customer_id == Customer.referred_by)
                    .where(Customer.referred_by.is_not(None))
                    .group_by(referrer_band, converted)
                )
            }
            by_category: dict[str, int] = dict(
                session.execute(
                    select(category, func.count()).where(Customer.nps_score.is_not(None)).group_by(category)
                )
                .tuples()
                .all()
            )
        for label, _ in TENURES:
            tenure.add_metric([label], by_tenure.get(label, 0))
        for band in CsatBand:
            for done in (True, False):
                referred.add_metric([band.value, str(done).lower()], by_band.get((band.value, done), 0))
        for name in NPS_CATEGORIES:
            nps.add_metric([name], by_category.get(name, 0))
        yield tenure
        yield referred
        yield nps
        yield from self._period(now)

    def _period(self, now: datetime) -> Iterator[Metric]:
        churn = GaugeMetricFamily(
            "lifecycle_period_logo_churn_ratio",
            "Churns in the current retention period / customers at its start (absent: none at its start).",
        )
        retention = GaugeMetricFamily(
            "lifecycle_period_revenue_retention_ratio",
            "Renewal + expansion revenue won in the current retention period / all revenue won in the one before.",
            labels=["currency"],
        )
        moment = time.monotonic()
        if (
            self._retention is None
            or moment - self._retention[0] >= self.retention_refresh_seconds
            or (self._retention[1].end <= naive_utc(now))
        ):
            self._retention = moment, period_retention(self.engine, self.retention_period, self.zone, now)
        figures = self._retention[1]
        if (rate := figures.logo_churn_rate) is not None:
            churn.add_metric([], rate)
        for currency, ratio in sorted(figures.revenue_retention().items()):
            retention.add_metric([currency], ratio)
        yield churn
        yield retention
