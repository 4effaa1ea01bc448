"""The promise of docs/reliability.md: however the three topics interleave, in whatever batches, with
redeliveries, the metrics are told the same figures (net of retractions) and the read model holds the
same rows. The path a customer took (its transitions) is what the order made it, and is left out."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import datetime
from typing import Any, cast

import sqlalchemy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, Table, select
from sqlalchemy.orm import Session

from streams.db.models import Base, Churn, Customer, Deal, ProcessedEvent, StageTransition, Ticket
from streams.db.repository import Repository
from streams.domain.journey import Outcome
from streams.pipeline.service import BatchResult, Pipeline
from tests.support import TOPICS, event, messages_for, migrated, net_observations

TIMES = [f"2026-0{month}-{day:02d}T0{hour}:00:00Z" for month in (1, 2) for day in (1, 9, 17) for hour in (0, 5)]
# what the order of arrival decides, by design: the path (transitions, when the stage last changed)
PATH = {"stage_changed_at"}
PATH_OBSERVATIONS = {"stage_transition", "stage_duration", "event_delay"}
# what histograms observe one by one; a counter is told sums (a late referral brings the revenue won so
# far in one), so only its total per series is the figure
OBSERVED_ONE_BY_ONE = {"sales_cycle", "ticket_handling", "ticket_resolution", "ticket_first_response"}


@st.composite
def histories(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Two customers' events on the three topics: every type, facts stated once, times that collide; each
    may refer the other."""
    docs: list[dict[str, Any]] = []
    time = st.sampled_from(TIMES)
    kind = st.sampled_from([{}, {"kind": "new_business"}, {"kind": "renewal"}, {"kind": "expansion"}])
    for customer, other in (("c-1", "c-2"), ("c-2", "c-1")):
        for _ in range(draw(st.integers(0, 2))):
            referral = draw(st.sampled_from([{}, {"referred_by": other}, {"referred_by": "c-3"}]))
            channel = draw(st.sampled_from(["web", "referral"]))
            docs.append(event("lead.created", customer, channel=channel, at=draw(time), **referral))
        for _ in range(draw(st.integers(0, 2))):
            docs.append(event(draw(st.sampled_from(["lead.qualified", "lead.disqualified"])), customer, at=draw(time)))
        for deal in range(draw(st.integers(0, 2))):
            deal_id = f"{customer}-d{deal}"
            owner = draw(st.sampled_from(["ana", "bo"]))
            if draw(st.booleans()):
                docs.append(event("deal.opened", customer, deal_id=deal_id, owner=owner, at=draw(time), **draw(kind)))
            for stage in draw(st.lists(st.sampled_from(["demo", "proposal"]), max_size=2)):
                docs.append(event("deal.stage_changed", customer, deal_id=deal_id, stage=stage, at=draw(time)))
            ending = draw(st.sampled_from(["open", "won", "lost", "both"]))
            if ending in ("won", "both"):
                amount = draw(st.sampled_from([1000, 250]))
                docs.append(
                    event(
                        "deal.won", customer, deal_id=deal_id, owner=owner, amount=amount, at=draw(time), **draw(kind)
                    )
                )
            if ending in ("lost", "both"):
                docs.append(event("deal.lost", customer, deal_id=deal_id, at=draw(time)))
        for ticket in range(draw(st.integers(0, 2))):
            ticket_id = f"{customer}-t{ticket}"
            if draw(st.booleans()):
                channel = draw(st.sampled_from(["email", "chat"]))
                docs.append(event("ticket.opened", customer, ticket_id=ticket_id, channel=channel, at=draw(time)))
            for _ in range(draw(st.integers(0, 2))):
                docs.append(event("ticket.responded", customer, ticket_id=ticket_id, at=draw(time)))
            for _ in range(draw(st.integers(0, 2))):
                contacts, handling = draw(st.integers(1, 3)), draw(st.sampled_from([60, 600]))
                docs.append(
                    event(
                        "ticket.resolved",
                        customer,
                        ticket_id=ticket_id,
                        contacts=contacts,
                        handling_seconds=handling,
                        at=draw(time),
                    )
                )
            if draw(st.booleans()):
                docs.append(event("ticket.reopened", customer, ticket_id=ticket_id, at=draw(time)))
            for _ in range(draw(st.integers(0, 2))):
                score = draw(st.integers(1, 5))
                docs.append(event("csat.submitted", customer, ticket_id=ticket_id, score=score, at=draw(time)))
        for _ in range(draw(st.integers(0, 2))):
            docs.append(event("customer.churned", customer, at=draw(time)))
        for _ in range(draw(st.integers(0, 1))):
            docs.append(event("nps.submitted", customer, score=draw(st.integers(0, 10)), at=draw(time)))
    return docs


def clock() -> datetime:
    return datetime(2026, 6, 1)


def cleared(engine: Engine) -> Engine:
    """One database per test, emptied for each example: a migration per example would be most of the time."""
    with Session(engine) as session:
        for model in (Customer, Deal, Ticket, StageTransition, ProcessedEvent, Churn):
            session.execute(sqlalchemy.delete(model))
        session.commit()
    return engine


def figures(results: list[BatchResult]) -> tuple[Counter[Any], Counter[Any]]:
    """What the metrics were told: observations net of retractions, and the events by outcome."""
    observations = (
        (name, labels, value)
        for result in results
        for (name, labels), values in result.observations.items()
        if name not in PATH_OBSERVATIONS
        for value in values
    )
    outcomes: Counter[Any] = Counter()
    for result in results:
        outcomes.update(result.outcomes)
    figures: dict[Any, float] = {}
    for (name, labels, value), count in net_observations(observations).items():
        key = (name, labels, value) if name in OBSERVED_ONE_BY_ONE else (name, labels, "total")
        figures[key] = figures.get(key, 0.0) + (count if name in OBSERVED_ONE_BY_ONE else value * count)
    return Counter({key: total for key, total in figures.items() if total}), outcomes


def rows(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    tables = {}
    with Session(engine) as session:
        for model in (Customer, Deal, Ticket, ProcessedEvent, Churn):
            table = cast(Table, cast(type[Base], model).__table__)
            columns = [column for column in table.columns if column.name not in PATH]
            tables[table.name] = sorted((tuple(row) for row in session.execute(select(*columns))), key=repr)
    return tables


def check_order_freedom(engine: Engine, docs: list[dict[str, Any]], data: st.DataObject) -> None:
    reference_results = [Pipeline(Repository(cleared(engine)), TOPICS, clock=clock).process(messages_for(docs))]
    reference_figures, reference_rows = figures(reference_results), rows(engine)
    assert all(outcome is Outcome.PROCESSED for *_, outcome in reference_figures[1])

    again = data.draw(st.lists(st.sampled_from(docs), max_size=len(docs)) if docs else st.just([]), label="redelivered")
    arrival = data.draw(st.permutations([*docs, *again]), label="arrival")
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(arrival) - 1))), label="cuts"))
    kept = data.draw(st.sampled_from([0, 1, 100]), label="kept states")
    pipeline = Pipeline(Repository(cleared(engine), state_cache_customers=kept), TOPICS, clock=clock)
    messages = messages_for(arrival)
    bounds = [0, *cuts, len(messages)]
    results = [pipeline.process(messages[a:b]) for a, b in itertools.pairwise(bounds) if a < b]
    observations, outcomes = figures(results)

    assert observations == reference_figures[0]
    duplicates = Counter({key[:2]: count for key, count in outcomes.items() if key[2] is Outcome.DUPLICATE})
    assert sum(duplicates.values()) == len(again)
    assert +Counter({key: n for key, n in outcomes.items() if key[2] is not Outcome.DUPLICATE}) == reference_figures[1]
    assert rows(engine) == reference_rows


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(docs=histories(), data=st.data())
def test_figures_and_rows_do_not_depend_on_arrival_sqlite(
    sqlite_url: str, docs: list[dict[str, Any]], data: st.DataObject
) -> None:
    check_order_freedom(engine_for(sqlite_url), docs, data)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(docs=histories(), data=st.data())
def test_figures_and_rows_do_not_depend_on_arrival_postgresql(
    postgres_url: str, docs: list[dict[str, Any]], data: st.DataObject
) -> None:
    check_order_freedom(engine_for(postgres_url), docs, data)


_engines: dict[str, Engine] = {}


def engine_for(url: str) -> Engine:
    """The fixture's database, migrated once for all the examples of the test."""
    if url not in _engines:
        _engines[url] = migrated(url)
    return _engines[url]
