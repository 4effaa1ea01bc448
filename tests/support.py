"""Helpers of the tests alone: events, waiting on values, row counts, the pipeline without Kafka. Running a
worker process and reading its /metrics are streams.cli.processes and streams.metrics.scraped."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import orjson
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from streams.cli.processes import wait_for as wait_for  # the one the worker's start-up waits with
from streams.contract.messages import RawMessage
from streams.contract.vocabulary import EVENT_TOPICS
from streams.db.engine import make_engine
from streams.db.migrations import upgrade
from streams.db.models import Customer, Deal, Ticket
from streams.domain.journey import RETRACTED

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[1]  # the repository
_ids = itertools.count()


def event(
    event_type: str, customer_id: str = "c-1", *, at: str = "2026-03-01T10:00:00Z", **fields: Any
) -> dict[str, Any]:
    """A valid event of ``event_type``; ``fields`` override or add to the defaults."""
    defaults: dict[str, dict[str, Any]] = {
        "lead.created": {"lead_id": "l-1", "channel": "web"},
        "lead.qualified": {"lead_id": "l-1"},
        "lead.disqualified": {"lead_id": "l-1"},
        "deal.opened": {"deal_id": "d-1", "amount": 1000, "currency": "EUR", "owner": "ana"},
        "deal.stage_changed": {"deal_id": "d-1", "stage": "demo"},
        "deal.won": {"deal_id": "d-1", "amount": 1000, "currency": "EUR", "owner": "ana"},
        "deal.lost": {"deal_id": "d-1"},
        "ticket.opened": {"ticket_id": "t-1", "channel": "email", "priority": "normal"},
        "ticket.responded": {"ticket_id": "t-1"},
        "ticket.resolved": {"ticket_id": "t-1", "handling_seconds": 600, "contacts": 1},
        "ticket.reopened": {"ticket_id": "t-1"},
        "csat.submitted": {"ticket_id": "t-1", "score": 5},
        "customer.churned": {},
        "nps.submitted": {"score": 9},
    }
    return {
        "event_id": f"ev-{next(_ids)}",
        "type": event_type,
        "customer_id": customer_id,
        "occurred_at": at,
        "schema_version": 1,
        **defaults[event_type],
        **fields,
    }


def wait_for_value(
    fetch: Callable[[], T], accept: Callable[[T], bool], *, timeout: float = 60.0, what: str = "value"
) -> T:
    """Fetch until ``accept(value)``; returns the accepted value."""
    box: list[T] = []

    def accepted() -> bool:
        box[:] = [fetch()]
        return accept(box[0])

    wait_for(accepted, timeout=timeout, what=what)
    return box[0]


def row_count(database_url: str, model: Any, *conditions: Any) -> int:
    """Rows of ``model`` matching ``conditions``; -1 while the database is unreachable or not created yet."""
    from sqlalchemy import func, select
    from sqlalchemy.orm import Session

    from streams.db.engine import make_engine

    engine = make_engine(database_url)
    try:
        with Session(engine) as session:
            return int(session.scalar(select(func.count()).select_from(model).where(*conditions)) or 0)
    except Exception:
        return -1
    finally:
        engine.dispose()


class Recorder:
    """A Publish (streams.pipeline.batches) that records what it was given and delivers at once."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def __call__(self, records: Sequence[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]]) -> None:
        self.sent.extend({"key": key, "value": value, "headers": dict(headers)} for key, value, headers in records)


def net_observations(
    observations: Iterable[tuple[str, tuple[str, ...], float]],
) -> Counter[tuple[str, tuple[str, ...], float]]:
    """Observations minus their retractions (``name_retracted``, the value taken back), as the recording
    rules subtract a metric's ``*_retracted`` twin: what the order-freedom promise is about. Negative
    counts are kept: a retraction of something never observed is a bug to see."""
    net: Counter[tuple[str, tuple[str, ...], float]] = Counter()
    for name, labels, value in observations:
        if name.endswith(RETRACTED):
            net[name.removesuffix(RETRACTED), labels, value] -= 1
        else:
            net[name, labels, value] += 1
    return Counter({key: count for key, count in net.items() if count})


# --- the pipeline without Kafka ---------------------------------------------------------------
TOPICS = {"leads": "leads", "deals": "deals", "tickets": "tickets"}


def messages_for(events: list[dict[str, object]]) -> list[RawMessage]:
    return [
        RawMessage(EVENT_TOPICS[str(e["type"])], 0, i, str(e["customer_id"]).encode(), orjson.dumps(e))
        for i, e in enumerate(events)
    ]


def migrated(url: str) -> Engine:
    engine = make_engine(url)
    upgrade(engine)
    return engine


def table_snapshot(engine: Engine) -> dict[str, Any]:
    with Session(engine) as session:
        return {
            "customers": session.execute(
                select(Customer.customer_id, Customer.stage, Customer.converted_at).order_by(Customer.customer_id)
            ).all(),
            "deals": session.execute(select(Deal.deal_id, Deal.status, Deal.amount).order_by(Deal.deal_id)).all(),
            "tickets": session.execute(
                select(Ticket.ticket_id, Ticket.status, Ticket.csat_score).order_by(Ticket.ticket_id)
            ).all(),
        }
