"""Gauges that describe state (customers by stage, open tickets, quota attainment), read from the
database at scrape time: a restarted worker reports them at once, and every worker reports the same
(aggregate them with max, not sum)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
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

    def __init__(
        self,
        engine: Engine,
        quotas: Quotas | None = None,
        owner: BoundedLabel | None = None,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """``clock`` gives the aware now that picks the quota period (a parameter for the tests)."""
        self.engine = engine
        self.quotas = quotas
        self.owner = owner or BoundedLabel(100)
        self.clock = clock

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
                start, end = self.quotas.period_bounds(self.clock())
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
