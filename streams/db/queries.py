"""Questions the read model answers (used by the HTTP API, the live view and the CLI)."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from types import MappingProxyType
from typing import Any, TypedDict
from urllib.parse import quote, urlencode

import orjson
from sqlalchemy import BigInteger, ColumnElement, Engine, and_, case, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from streams.contract.timestamps import format_timestamp
from streams.contract.vocabulary import could_be_customer_id
from streams.db.models import Churn, Customer, Deal, StageTransition, Ticket
from streams.db.retention import period_retention, revenue_by_kind
from streams.domain.errors import InvalidRequest
from streams.domain.figures import (
    PASSIVE_SCORE,
    PROMOTER_SCORE,
    conversion_rate,
    first_contact_resolution_rate,
    net_promoter_score,
    ratio,
)
from streams.domain.journey import kind_of
from streams.domain.stages import Stage


def _time(value: Any) -> str | None:
    return format_timestamp(value) if value is not None else None


DEFAULT_LIMIT = 100  # entries of each list a page answers unless the client asks for another number
MAX_LIMIT = 1000
EMPTY_QUERY: Mapping[str, str] = MappingProxyType({})  # a client's query string that asks for nothing
_NOT_A_CURSOR = "after must be the cursor of a next link of this list"


@dataclass(frozen=True)
class Entries:
    """One of a customer's lists, paged by keyset: ``key`` (unique columns) orders it, ``show`` is an
    entry (given the row and its customer)."""

    model: Any
    key: tuple[InstrumentedAttribute[Any], ...]
    show: Callable[[Any, Customer], dict[str, Any]]


def effective_kind(deal: Deal, customer: Customer) -> str | None:
    """A won deal's kind as the metrics count it (:func:`streams.db.retention.deal_kind`): declared, else
    new business for the customer's first won deal and expansion for the others; a deal not won: as
    declared (None: none yet)."""
    if deal.status != "won":
        return deal.kind
    return kind_of(deal.kind, deal.deal_id, customer.first_won_deal_id)


# list name -> the list (the name is its path under /customers/{id} and its field in the answers)
ENTRIES: dict[str, Entries] = {
    "journey": Entries(
        StageTransition,
        (StageTransition.occurred_at, StageTransition.id),
        lambda t, _: {
            "from": t.from_stage,
            "to": t.to_stage,
            "occurred_at": _time(t.occurred_at),
            "event_id": t.event_id,
            "previous_stage_entered_at": _time(t.previous_stage_entered_at),
            "seconds_in_previous_stage": t.seconds_in_previous_stage,
        },
    ),
    "deals": Entries(
        Deal,
        (Deal.deal_id,),
        lambda d, customer: {
            "deal_id": d.deal_id,
            "status": d.status,
            "amount": d.amount,
            "currency": d.currency,
            "owner": d.owner,
            "kind": effective_kind(d, customer),
        },
    ),
    "tickets": Entries(
        Ticket,
        (Ticket.ticket_id,),
        lambda t, _: {"ticket_id": t.ticket_id, "status": t.status, "channel": t.channel, "csat_score": t.csat_score},
    ),
}


def _cursor(values: Sequence[Any]) -> str:
    payload = orjson.dumps([value.isoformat() if isinstance(value, datetime) else value for value in values])
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


def _key_value(column: InstrumentedAttribute[Any], value: object) -> object:
    """``value`` as ``column`` binds it on every dialect (PostgreSQL refuses a NUL and an integer past the
    column's type, SQLite one past 64 bits)."""
    python_type = column.type.python_type
    bound = 2**63 if isinstance(column.type, BigInteger) else 2**31
    if python_type is datetime and isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = datetime.fromisoformat(value)
    if type(value) is python_type and (
        (isinstance(value, datetime) and value.tzinfo is None)
        or (isinstance(value, int) and -bound <= value < bound)
        or (isinstance(value, str) and "\x00" not in value)
    ):
        return value
    raise InvalidRequest(_NOT_A_CURSOR)


def _after(entries: Entries, cursor: str) -> ColumnElement[bool]:
    """Rows past the key that ``cursor`` (from a ``next`` link) carries, in the list's order."""
    try:
        values = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except ValueError:
        raise InvalidRequest(_NOT_A_CURSOR) from None
    if not isinstance(values, list) or len(values) != len(entries.key):
        raise InvalidRequest(_NOT_A_CURSOR)
    pairs = [(column, _key_value(column, value)) for column, value in zip(entries.key, values, strict=True)]
    # (a, b) > (x, y) spelled out column by column, each value bound with its column's type
    column, value = pairs[-1]
    past: ColumnElement[bool] = column > value
    for column, value in reversed(pairs[:-1]):
        past = or_(column > value, and_(column == value, past))
    return past


def _limit(query: Mapping[str, str]) -> int:
    text = query.get("limit")
    if text is None:
        return DEFAULT_LIMIT
    if text.isascii() and text.isdigit() and len(text) <= len(str(MAX_LIMIT)) and 1 <= int(text) <= MAX_LIMIT:
        return int(text)
    raise InvalidRequest(f"limit must be a whole number from 1 to {MAX_LIMIT}")


def _page(
    session: Session, customer: Customer, name: str, limit: int, after: ColumnElement[bool] | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    """Up to ``limit`` entries of ``customer``'s list ``name`` and the link to the next page (None: no more)."""
    entries = ENTRIES[name]
    customer_id = customer.customer_id
    statement = select(entries.model).where(entries.model.customer_id == customer_id)
    if after is not None:
        statement = statement.where(after)
    rows = session.scalars(statement.order_by(*entries.key).limit(limit + 1)).all()
    if len(rows) <= limit:
        return [entries.show(row, customer) for row in rows], None
    rows = rows[:limit]
    cursor = _cursor([getattr(rows[-1], column.key) for column in entries.key])
    link = f"/customers/{quote(customer_id, safe='')}/{name}?{urlencode({'after': cursor, 'limit': limit})}"
    return [entries.show(row, customer) for row in rows], link


def customer_journey(engine: Engine, customer_id: str, query: Mapping[str, str] = EMPTY_QUERY) -> dict[str, Any] | None:
    """A customer's current stage and the first page of its journey, deals and tickets (``query``'s
    ``limit`` entries of each), or None if unknown."""
    if not could_be_customer_id(customer_id):
        return None
    limit = _limit(query)
    with Session(engine) as session:
        customer = session.get(Customer, customer_id)
        if customer is None:
            return None
        pages = {name: _page(session, customer, name, limit) for name in ENTRIES}
        return {
            "customer_id": customer.customer_id,
            "stage": customer.stage,
            "first_seen_at": _time(customer.first_seen_at),
            "stage_changed_at": _time(customer.stage_changed_at),
            "converted_at": _time(customer.converted_at),
            "churns": customer.churns,
            "churned_at": _time(customer.churned_at),
            "referred_by": customer.referred_by,
            "csat_band": customer.csat_band,
            "nps_score": customer.nps_score,
            **{name: entries for name, (entries, _) in pages.items()},
            "links": {f"{name}_next": link for name, (_, link) in pages.items()},
        }


def customer_entries(
    engine: Engine, customer_id: str, name: str, query: Mapping[str, str] = EMPTY_QUERY
) -> dict[str, Any] | None:
    """A page of the list ``name`` (of :data:`ENTRIES`) of a customer's: ``query``'s ``limit`` entries
    after its ``after`` (a cursor of a ``next`` link; none: from the start), or None if unknown."""
    if not could_be_customer_id(customer_id):
        return None
    limit = _limit(query)
    cursor = query.get("after")
    after = None if cursor is None else _after(ENTRIES[name], cursor)
    with Session(engine) as session:
        customer = session.get(Customer, customer_id)
        if customer is None:
            return None
        entries, link = _page(session, customer, name, limit, after)
        return {"customer_id": customer_id, name: entries, "links": {f"{name}_next": link}}


def stage_counts(engine: Engine) -> dict[str, int]:
    with Session(engine) as session:
        rows = session.execute(select(Customer.stage, func.count()).group_by(Customer.stage)).tuples()
        return {str(stage): int(count) for stage, count in rows if stage is not None}


class ServiceSummary(TypedDict):
    """What :func:`service_summary` answers, typed for the live view. Amounts are by currency: currencies
    are never added together."""

    won_deals: int
    lost_deals: int
    won_revenue: dict[str, float]  # currency -> sum of the won amounts, every kind
    csat_responses: int
    csat_share: float | None
    fcr_rate: float | None
    open_tickets: int
    # sales
    leads: int  # customers with a lead.created
    converted_leads: int  # of them, those with a won deal
    conversion_rate: float | None  # converted_leads / leads
    revenue_by_kind: dict[str, dict[str, float]]  # kind (new_business, renewal, expansion) -> currency -> amount
    # service
    referral_revenue: dict[str, float]  # won revenue of the customers a referral brought
    churns: int  # customer.churned events
    churned_customers: int  # customers in the stage churned now
    nps_promoters: int  # customers by their latest NPS answer (relationship NPS)
    nps_detractors: int
    nps_responses: int
    nps: float | None  # -100 to 100
    # the current retention period (LIFECYCLE_RETENTION_PERIOD), to now
    retention_period: str
    period_start: datetime  # naive UTC, as the database's times
    period_churns: int
    period_customers_at_start: int
    period_logo_churn_rate: float | None
    period_revenue_retention: dict[str, float]  # currency -> renewal + expansion won / the period before's revenue


def service_summary(
    engine: Engine, *, retention_period: str = "month", zone: tzinfo = UTC, now: datetime | None = None
) -> ServiceSummary:
    """Headline figures over all stored tickets, deals, churns and NPS answers (docs/metrics.md defines
    each), and the retention figures of the ``retention_period`` holding the aware ``now`` (default: the
    current time), its boundaries midnights in ``zone``."""
    now = now or datetime.now(UTC)
    with Session(engine) as session:
        revenue = select(Deal.currency, func.sum(Deal.amount)).where(Deal.status == "won").group_by(Deal.currency)
        won_revenue = {currency: float(total or 0) for currency, total in session.execute(revenue) if currency}
        won = session.scalar(select(func.count()).where(Deal.status == "won"))
        lost = session.scalar(select(func.count()).where(Deal.status == "lost"))
        responses = session.scalar(select(func.count()).where(Ticket.csat_score.is_not(None)))
        satisfied = session.scalar(select(func.count()).where(Ticket.csat_score >= 4))
        # per resolution, as lifecycle_tickets_first_contact_resolved_total / lifecycle_tickets_resolved_total
        resolutions, first_contact = session.execute(
            select(
                func.coalesce(func.sum(Ticket.resolutions), 0),
                func.coalesce(func.sum(Ticket.first_contact_resolutions), 0),
            )
        ).one()
        open_tickets = session.scalar(select(func.count()).where(Ticket.status == "open"))
        leads, converted = session.execute(
            select(func.count(), func.count(Customer.converted_at)).where(Customer.first_lead_at.is_not(None))
        ).one()
        by_kind = revenue_by_kind(session)
        referred = (
            select(Deal.currency, func.sum(Deal.amount))
            .join(Customer, Customer.customer_id == Deal.customer_id)
            .where(Deal.status == "won", Customer.referred_by.is_not(None))
            .group_by(Deal.currency)
        )
        referral_revenue = {currency: float(total or 0) for currency, total in session.execute(referred) if currency}
        churns = session.scalar(select(func.count()).select_from(Churn))
        churned = session.scalar(select(func.count()).where(Customer.stage == Stage.CHURNED.value))
        promoters, detractors, answers = session.execute(
            select(
                func.coalesce(func.sum(case((Customer.nps_score >= PROMOTER_SCORE, 1), else_=0)), 0),
                func.coalesce(func.sum(case((Customer.nps_score < PASSIVE_SCORE, 1), else_=0)), 0),
                func.count(Customer.nps_score),
            )
        ).one()
    period = period_retention(engine, retention_period, zone, now)
    return {
        "won_deals": int(won or 0),
        "lost_deals": int(lost or 0),
        "won_revenue": won_revenue,
        "csat_responses": int(responses or 0),
        "csat_share": ratio(satisfied or 0, responses or 0),
        "fcr_rate": first_contact_resolution_rate(int(first_contact), int(resolutions)),
        "open_tickets": int(open_tickets or 0),
        "leads": int(leads),
        "converted_leads": int(converted),
        "conversion_rate": conversion_rate(int(converted), int(leads)),
        "revenue_by_kind": by_kind,
        "referral_revenue": referral_revenue,
        "churns": int(churns or 0),
        "churned_customers": int(churned or 0),
        "nps_promoters": int(promoters),
        "nps_detractors": int(detractors),
        "nps_responses": int(answers),
        "nps": net_promoter_score(int(promoters), int(detractors), int(answers)),
        "retention_period": retention_period,
        "period_start": period.start,
        "period_churns": period.churns,
        "period_customers_at_start": period.customers_at_start,
        "period_logo_churn_rate": period.logo_churn_rate,
        "period_revenue_retention": period.revenue_retention(),
    }


def quota_won_by_owner(engine: Engine, currency: str, start: datetime, end: datetime) -> dict[str, float]:
    """Won revenue in ``currency`` of the deals won in ``[start, end)`` (naive UTC), by owner: what quota
    attainment divides (docs/metrics.md, "quota attainment")."""
    with Session(engine) as session:
        rows = session.execute(
            select(Deal.owner, func.sum(Deal.amount))
            .where(Deal.status == "won", Deal.won_at >= start, Deal.won_at < end, Deal.currency == currency)
            .group_by(Deal.owner)
        ).tuples()
        return {str(owner): float(total or 0) for owner, total in rows if owner is not None}
