"""What service keeps, from the read model, per period: the customers at its start, its churns, and the
revenue that existing customers renewed or expanded (docs/metrics.md, "Retention")."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo

from sqlalchemy import ColumnElement, Engine, case, func, or_, select
from sqlalchemy.orm import Session

from streams.db.models import Churn, Customer, Deal
from streams.domain.figures import logo_churn_rate, revenue_retention
from streams.domain.journey import DealKind
from streams.domain.periods import period_bounds

RETAINED_KINDS = (DealKind.RENEWAL.value, DealKind.EXPANSION.value)


def deal_kind() -> ColumnElement[str]:
    """A won deal's kind as the metrics count it: declared, else new business for its customer's first won
    deal and expansion for the others (a query with it joins the deal's customer)."""
    implicit = case(
        (Deal.deal_id == Customer.first_won_deal_id, DealKind.NEW_BUSINESS.value), else_=DealKind.EXPANSION.value
    )
    return func.coalesce(Deal.kind, implicit)


def revenue_by_kind(
    session: Session, start: datetime | None = None, end: datetime | None = None
) -> dict[str, dict[str, float]]:
    """Won revenue by kind, then currency, of the deals won in ``[start, end)`` (None: unbounded)."""
    kind = deal_kind()
    statement = (
        select(kind, Deal.currency, func.sum(Deal.amount))
        .join(Customer, Customer.customer_id == Deal.customer_id)
        .where(Deal.status == "won")
        .group_by(kind, Deal.currency)
    )
    if start is not None:
        statement = statement.where(Deal.won_at >= start)
    if end is not None:
        statement = statement.where(Deal.won_at < end)
    revenue: dict[str, dict[str, float]] = {}
    for name, currency, total in session.execute(statement):
        if currency:
            revenue.setdefault(str(name), {})[str(currency)] = float(total or 0)
    return revenue


def customers_at(session: Session, moment: datetime) -> int:
    """Customers whose latest commercial fact before ``moment`` is a win: a win and a churn at the same
    instant count as a win (the events' ids, which order them in the stage rule, are not in the tables)."""
    last_won = (
        select(Deal.customer_id.label("customer_id"), func.max(Deal.won_at).label("at"))
        .where(Deal.status == "won", Deal.won_at < moment)
        .group_by(Deal.customer_id)
        .subquery()
    )
    last_churn = (
        select(Churn.customer_id.label("customer_id"), func.max(Churn.occurred_at).label("at"))
        .where(Churn.occurred_at < moment)
        .group_by(Churn.customer_id)
        .subquery()
    )
    joined = last_won.outerjoin(last_churn, last_won.c.customer_id == last_churn.c.customer_id)
    active = (
        select(func.count()).select_from(joined).where(or_(last_churn.c.at.is_(None), last_won.c.at >= last_churn.c.at))
    )
    return int(session.scalar(active) or 0)


@dataclass(frozen=True)
class PeriodRetention:
    """A period's retention figures; the current period's run to now."""

    start: datetime
    end: datetime
    churns: int  # customer.churned events in the period
    customers_at_start: int
    retained_revenue: dict[str, float]  # renewal + expansion won in the period, by currency
    previous_revenue: dict[str, float]  # every kind won in the period before, by currency

    @property
    def logo_churn_rate(self) -> float | None:
        return logo_churn_rate(self.churns, self.customers_at_start)

    def revenue_retention(self) -> dict[str, float]:
        """By currency, where the period before won something in it."""
        return {
            currency: rate
            for currency, base in self.previous_revenue.items()
            if (rate := revenue_retention(self.retained_revenue.get(currency, 0.0), base)) is not None
        }


def period_retention(engine: Engine, unit: str, zone: tzinfo, now: datetime) -> PeriodRetention:
    """The retention figures of the ``unit`` period holding the aware ``now``."""
    start, end = period_bounds(unit, zone, now)
    previous_start, _ = period_bounds(unit, zone, now, offset=-1)
    with Session(engine) as session:
        churns = session.scalar(select(func.count()).where(Churn.occurred_at >= start, Churn.occurred_at < end))
        current = revenue_by_kind(session, start, end)
        retained: dict[str, float] = {}
        for kind in RETAINED_KINDS:
            for currency, amount in current.get(kind, {}).items():
                retained[currency] = retained.get(currency, 0.0) + amount
        previous: dict[str, float] = {}
        for by_currency in revenue_by_kind(session, previous_start, start).values():
            for currency, amount in by_currency.items():
                previous[currency] = previous.get(currency, 0.0) + amount
        return PeriodRetention(start, end, int(churns or 0), customers_at(session, start), retained, previous)
