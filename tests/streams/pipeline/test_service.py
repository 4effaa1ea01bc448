"""The batch pipeline on SQLite and on a real PostgreSQL, without Kafka."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, cast

import pytest
import sqlalchemy
from sqlalchemy import Engine, Table, func, select
from sqlalchemy.orm import Session

from streams.cli.simulator import simulate
from streams.db.models import Customer, Deal, ProcessedEvent, StageTransition, Ticket
from streams.db.queries import service_summary, stage_counts
from streams.db.repository import Repository
from streams.domain.journey import Outcome
from streams.pipeline.service import Pipeline
from tests.support import TOPICS, event, messages_for, migrated, table_snapshot


def test_shuffled_and_duplicated_stream_gives_the_expected_outcome(database_url: str) -> None:
    engine = migrated(database_url)
    pipeline = Pipeline(Repository(engine), TOPICS)
    simulation = simulate(1500, seed=11)
    messages = messages_for(simulation.events)
    random.Random(7).shuffle(messages)
    for start in range(0, len(messages), 700):
        assert not pipeline.process(messages[start : start + 700]).dead_letters
    expected = simulation.expected
    assert stage_counts(engine) == {k: v for k, v in expected.stages.items() if v}
    summary = service_summary(engine)
    assert summary["won_revenue"] == pytest.approx(sum(expected.revenue_won.values()))
    assert summary["open_tickets"] == expected.tickets_open
    before = table_snapshot(engine)

    # the whole stream again, reshuffled: every message is a duplicate, nothing changes
    random.Random(8).shuffle(messages)
    outcomes = [o for s in range(0, len(messages), 900) for o in pipeline.process(messages[s : s + 900]).outcomes]
    assert {o[2] for o in outcomes} == {Outcome.DUPLICATE}
    assert table_snapshot(engine) == before
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(ProcessedEvent)) == len(messages)


def every_column(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Each table's rows, all columns but the transitions' serial id, in one order whatever the database."""
    tables = {}
    with Session(engine) as session:
        for model in (Customer, Deal, Ticket, StageTransition, ProcessedEvent):
            table = cast(Table, model.__table__)
            rows = session.execute(select(*(column for column in table.columns if column.name != "id")))
            tables[table.name] = sorted((tuple(row) for row in rows), key=repr)
    return tables


@pytest.mark.parametrize("kept", [0, 20_000], ids=["reading-all", "keeping-states"])
def test_small_batches_write_what_one_batch_writes(database_url: str, tmp_path: Path, kept: int) -> None:
    """The same events in the same order, in batches of 7 (rows updated by the columns that changed,
    unchanged rows left alone) and in one batch (every row inserted once, as it ends up): every column of
    every table the same. Reading all it touches, a batch sees only what the previous ones wrote."""
    messages = messages_for(simulate(600, seed=13).events)
    batched = Pipeline(Repository(migrated(database_url), state_cache_customers=kept), TOPICS)
    whole = Pipeline(Repository(migrated(f"sqlite:///{tmp_path / 'whole.db'}")), TOPICS)
    for start in range(0, len(messages), 7):
        assert not batched.process(messages[start : start + 7]).dead_letters
    whole.process(messages)
    tables = every_column(batched.repository.engine)
    assert tables == every_column(whole.repository.engine)
    assert all(tables.values())


def test_transitions_are_recorded_for_the_outbox(database_url: str) -> None:
    engine = migrated(database_url)
    repository = Repository(engine)
    pipeline = Pipeline(repository, TOPICS)
    result = pipeline.process(messages_for([event("lead.created"), event("deal.opened"), event("deal.won")]))
    assert [(t.from_stage, t.to_stage) for t in result.transitions] == [
        (None, "lead"),
        ("lead", "opportunity"),
        ("opportunity", "customer"),
    ]
    assert [t.event_id for _, t in repository.unpublished_transitions()] == [t.event_id for t in result.transitions]
    pipeline.process([], published=[t.event_id for t in result.transitions])
    assert repository.unpublished_transitions() == []
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(StageTransition)) == 3


def test_updates_leave_a_deals_and_a_tickets_customer_alone(database_url: str) -> None:
    """Fixed at the first event (the test above): an UPDATE naming it would rewrite its index entry
    on SQLite for nothing."""
    engine = migrated(database_url)
    pipeline = Pipeline(Repository(engine), TOPICS)
    pipeline.process(messages_for([event("deal.opened"), event("ticket.opened")]))
    statements: list[str] = []

    @sqlalchemy.event.listens_for(engine, "before_cursor_execute")
    def record(_connection: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(" ".join(statement.split()))

    later = "2026-03-01T11:00:00Z"
    pipeline.process(messages_for([event("deal.won", at=later), event("ticket.resolved", at=later)]))
    updates = {s.split()[1]: s.partition(" WHERE ")[0] for s in statements if s.startswith("UPDATE")}
    assert {"deals", "tickets"} <= updates.keys()
    assert "status" in updates["deals"] and "status" in updates["tickets"]
    assert "customer_id" not in updates["deals"] + updates["tickets"]
    with Session(engine) as session:
        assert session.execute(select(Deal.customer_id, Deal.status)).all() == [("c-1", "won")]
        assert session.execute(select(Ticket.customer_id, Ticket.status)).all() == [("c-1", "resolved")]


def test_conflicting_owner_goes_to_the_dead_letters(database_url: str) -> None:
    engine = migrated(database_url)
    pipeline = Pipeline(Repository(engine), TOPICS)
    pipeline.process(messages_for([event("deal.opened", customer_id="c-1")]))
    result = pipeline.process(
        messages_for([event("deal.won", customer_id="c-2"), event("lead.created", customer_id="c-3")])
    )
    assert [(d.error_class, d.reason) for d in result.dead_letters] == [
        ("conflict", "deal_id 'd-1' belongs to another customer")
    ]
    assert stage_counts(engine) == {"opportunity": 1, "lead": 1}


def test_whole_and_fractional_numbers_share_a_batch(database_url: str) -> None:
    """JSON has one number type: upstreams send 1000 or 1000.5, and JSON Schema's integer takes 4.0.
    PostgreSQL gets a batch's column as one typed array, and the driver refuses ints and floats mixed
    (the batch failed and was retried forever); a score of 4.0 must count as 4, not as a label of its own."""
    pipeline = Pipeline(Repository(migrated(database_url)), TOPICS)
    result = pipeline.process(
        messages_for(
            [
                event("deal.opened", "c-1", deal_id="d-1", amount=1000),
                event("deal.opened", "c-2", deal_id="d-2", amount=1000.5),
                event("deal.won", "c-3", deal_id="d-3", amount=2000),
                event("deal.won", "c-4", deal_id="d-4", amount=2000.25),
                *[event("ticket.opened", f"c-{n}", ticket_id=f"t-{n}") for n in (5, 6)],
                event("ticket.resolved", "c-5", ticket_id="t-5", handling_seconds=600, contacts=1),
                event("ticket.resolved", "c-6", ticket_id="t-6", handling_seconds=90.5, contacts=2.0),
                event("csat.submitted", "c-5", ticket_id="t-5", score=5),
                event("csat.submitted", "c-6", ticket_id="t-6", score=4.0),
            ]
        )
    )
    assert result.dead_letters == []
    with Session(pipeline.repository.engine) as session:
        assert session.execute(select(Deal.deal_id, Deal.amount).order_by(Deal.deal_id)).all() == [
            ("d-1", 1000),
            ("d-2", 1000.5),
            ("d-3", 2000),
            ("d-4", 2000.25),
        ]
        tickets = select(Ticket.ticket_id, Ticket.handling_seconds, Ticket.contacts, Ticket.csat_score)
        assert session.execute(tickets.order_by(Ticket.ticket_id)).all() == [
            ("t-5", 600, 1, 5),
            ("t-6", 90.5, 2, 4),
        ]
    assert sorted(labels[0] for (name, labels) in result.observations if name == "csat") == ["4", "5"]
