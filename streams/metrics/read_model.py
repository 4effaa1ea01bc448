"""Gauges that describe state (customers by stage, open tickets, quota attainment), read from the
database at scrape time: a restarted worker reports them at once, and every worker reports the same
(aggregate them with max, not sum)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from streams.contract.vocabulary import TICKET_CHANNELS
from streams.db.models import Customer, Deal, Ticket
from streams.domain.journey import UNKNOWN
from streams.domain.stages import Stage
from streams.metrics.labels import BoundedLabel
from streams.metrics.quotas import Quotas


class ReadModelCollector(Collector):
    """State gauges read from the database at scrape time (global state: aggregate with max, not sum)."""

    names = frozenset(("lifecycle_customers", "lifecycle_tickets_open", "lifecycle_quota_attainment_ratio"))

    def __init__(self, engine: Engine, quotas: Quotas | None = None, owner: BoundedLabel | None = None) -> None:
        self.engine = engine
        self.quotas = quotas
        self.owner = owner or BoundedLabel(100)

    def describe(self) -> Iterator[Metric]:
        """Names without a query, for a registry's bookkeeping."""
        for name in sorted(self.names):
            yield GaugeMetricFamily(name, "")

    def collect(self) -> Iterator[Metric]:
        customers = GaugeMetricFamily("lifecycle_customers", "Customers by current lifecycle stage.", labels=["stage"])
        open_tickets = GaugeMetricFamily("lifecycle_tickets_open", "Tickets currently open.", labels=["channel"])
        quota = GaugeMetricFamily(
            "lifecycle_quota_attainment_ratio",
            "Won revenue in the current quota period / the owner's quota.",
            labels=["owner"],
        )
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
                start = self.quotas.period_start(datetime.now(UTC).replace(tzinfo=None))
                won = {
                    str(owner): float(total or 0)
                    for owner, total in session.execute(
                        select(Deal.owner, func.sum(Deal.amount))
                        .where(Deal.status == "won", Deal.won_at >= start, Deal.currency == self.quotas.currency)
                        .group_by(Deal.owner)
                    ).tuples()
                }
        for stage in Stage:
            customers.add_metric([stage.value], by_stage.get(stage.value, 0))
        for channel in (*TICKET_CHANNELS, UNKNOWN):
            open_tickets.add_metric([channel], by_channel.get(None if channel == UNKNOWN else channel, 0))
        if self.quotas is not None:
            for owner, target in self.quotas.by_owner.items():
                if target > 0:
                    quota.add_metric([self.owner(owner)], won.get(owner, 0.0) / target)
        yield customers
        yield open_tickets
        yield quota
