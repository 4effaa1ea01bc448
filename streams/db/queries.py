"""Questions the read model answers (used by the HTTP API, the live view and the CLI)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from streams.contract.timestamps import format_timestamp
from streams.contract.vocabulary import could_be_customer_id
from streams.db.models import Customer, Deal, StageTransition, Ticket


def _time(value: Any) -> str | None:
    return format_timestamp(value) if value is not None else None


def customer_journey(engine: Engine, customer_id: str) -> dict[str, Any] | None:
    """A customer's current stage and its journey (transitions in order), or None if unknown."""
    if not could_be_customer_id(customer_id):
        return None
    with Session(engine) as session:
        customer = session.get(Customer, customer_id)
        if customer is None:
            return None
        transitions = session.scalars(
            select(StageTransition)
            .where(StageTransition.customer_id == customer_id)
            .order_by(StageTransition.occurred_at, StageTransition.id)
        ).all()
        deals = session.scalars(select(Deal).where(Deal.customer_id == customer_id).order_by(Deal.deal_id)).all()
        tickets = session.scalars(
            select(Ticket).where(Ticket.customer_id == customer_id).order_by(Ticket.ticket_id)
        ).all()
        return {
            "customer_id": customer.customer_id,
            "stage": customer.stage,
            "first_seen_at": _time(customer.first_seen_at),
            "stage_changed_at": _time(customer.stage_changed_at),
            "converted_at": _time(customer.converted_at),
            "journey": [
                {"from": t.from_stage, "to": t.to_stage, "occurred_at": _time(t.occurred_at), "event_id": t.event_id}
                for t in transitions
            ],
            "deals": [
                {"deal_id": d.deal_id, "status": d.status, "amount": d.amount, "currency": d.currency, "owner": d.owner}
                for d in deals
            ],
            "tickets": [
                {"ticket_id": t.ticket_id, "status": t.status, "channel": t.channel, "csat_score": t.csat_score}
                for t in tickets
            ],
        }


def stage_counts(engine: Engine) -> dict[str, int]:
    with Session(engine) as session:
        rows = session.execute(select(Customer.stage, func.count()).group_by(Customer.stage)).tuples()
        return {str(stage): int(count) for stage, count in rows if stage is not None}


def service_summary(engine: Engine) -> dict[str, float | int | None]:
    """Headline figures over all stored tickets and deals (docs/metrics.md defines each)."""
    with Session(engine) as session:
        won_revenue = session.scalar(select(func.coalesce(func.sum(Deal.amount), 0)).where(Deal.status == "won"))
        won = session.scalar(select(func.count()).where(Deal.status == "won"))
        lost = session.scalar(select(func.count()).where(Deal.status == "lost"))
        responses = session.scalar(select(func.count()).where(Ticket.csat_score.is_not(None)))
        satisfied = session.scalar(select(func.count()).where(Ticket.csat_score >= 4))
        resolved = session.scalar(select(func.count()).where(Ticket.resolved_at.is_not(None)))
        first_contact = session.scalar(select(func.count()).where(Ticket.contacts == 1))
        open_tickets = session.scalar(select(func.count()).where(Ticket.status == "open"))
        return {
            "won_deals": int(won or 0),
            "lost_deals": int(lost or 0),
            "won_revenue": float(won_revenue or 0),
            "csat_responses": int(responses or 0),
            "csat_share": (satisfied or 0) / responses if responses else None,
            "fcr_rate": (first_contact or 0) / resolved if resolved else None,
            "open_tickets": int(open_tickets or 0),
        }
