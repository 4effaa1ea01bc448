"""The batch pipeline on SQLite and on a real PostgreSQL, without Kafka."""

from __future__ import annotations

import random
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast
from unittest import mock

import orjson
import pytest
import sqlalchemy
from sqlalchemy import Engine, Table, func, select
from sqlalchemy.orm import Session

from streams.cli.simulator import simulate
from streams.contract.transitions import transition_message
from streams.db.models import Churn, Customer, Deal, ProcessedEvent, StageTransition, Ticket
from streams.db.queries import customer_journey, service_summary, stage_counts
from streams.db.repository import Repository
from streams.domain.errors import ErrorClass
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
    assert summary["won_revenue"] == pytest.approx(expected.revenue_won)
    assert summary["open_tickets"] == expected.tickets_open
    assert summary["won_deals"] == expected.deals_won
    assert summary["revenue_by_kind"].keys() == expected.revenue_won_by_kind.keys()
    for kind, revenue in expected.revenue_won_by_kind.items():
        assert summary["revenue_by_kind"][kind] == pytest.approx(revenue), kind
    assert summary["referral_revenue"] == pytest.approx(expected.referral_revenue)
    assert (summary["churns"], summary["churned_customers"]) == (expected.churns, expected.stages["churned"])
    assert (summary["nps_promoters"], summary["nps_detractors"], summary["nps_responses"]) == (
        expected.nps_customers["promoter"],
        expected.nps_customers["detractor"],
        expected.nps_customers.total(),
    )
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


def fixed_clock() -> datetime:
    """The dedup records' retention is counted from the time of processing: one time for both pipelines."""
    return datetime(2026, 12, 1, 12, 0)


@pytest.mark.parametrize("kept", [0, 20_000], ids=["reading-all", "keeping-states"])
def test_small_batches_write_what_one_batch_writes(database_url: str, tmp_path: Path, kept: int) -> None:
    """The same events in the same order, in batches of 7 (rows updated by the columns that changed,
    unchanged rows left alone) and in one batch (every row inserted once, as it ends up): every column of
    every table the same. Reading all it touches, a batch sees only what the previous ones wrote."""
    messages = messages_for(simulate(600, seed=13).events)
    batched = Pipeline(Repository(migrated(database_url), state_cache_customers=kept), TOPICS, clock=fixed_clock)
    whole = Pipeline(Repository(migrated(f"sqlite:///{tmp_path / 'whole.db'}")), TOPICS, clock=fixed_clock)
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


# --- one event id, one content (#19, item 5) -------------------------------------------------------
@pytest.mark.parametrize("first_type", ["lead.created", "deal.won"])
def test_an_event_id_reused_for_other_content_is_a_conflict_not_a_duplicate(database_url: str, first_type: str) -> None:
    """Whichever arrived first won, silently: a lead or a customer by arrival. Now the second is dead-
    lettered as a conflict, in a later batch and in the same one, and a true redelivery stays a duplicate."""
    lead, won = event("lead.created", event_id="same"), event("deal.won", event_id="same")
    first, second = (lead, won) if first_type == "lead.created" else (won, lead)
    for batches in ([[first], [second, first]], [[first, second, first]]):
        engine = migrated(database_url)
        pipeline = Pipeline(Repository(engine), TOPICS)
        results = [pipeline.process(messages_for(batch)) for batch in batches]
        letters = [letter for result in results for letter in result.dead_letters]
        assert [(letter.error_class, letter.message.topic) for letter in letters] == [
            (ErrorClass.CONFLICT, "deals" if second is won else "leads")
        ]
        assert "event_id reused" in letters[0].reason
        outcomes = sum((result.outcomes for result in results), Counter())
        assert sorted(outcome for (*_, outcome), count in outcomes.items() for _ in range(count)) == [
            Outcome.DEAD_LETTERED,
            Outcome.DUPLICATE,
            Outcome.PROCESSED,
        ]
        assert stage_counts(engine) == {"lead" if first is lead else "customer": 1}
        with Session(engine) as session:
            assert session.scalars(select(ProcessedEvent.event_id)).all() == ["same"]
            reset_all(session)


def reset_all(session: Session) -> None:
    """The PostgreSQL database is shared by the loop's rounds: each starts from empty tables."""
    for model in (Customer, Deal, Ticket, StageTransition, ProcessedEvent):
        session.execute(sqlalchemy.delete(model))
    session.commit()


def test_a_redelivery_respelled_is_other_content(sqlite_url: str) -> None:
    """The digest is over the fields the contract names: their order, and fields it does not name (a trace
    id added, nested deep), make no other content; another spelling of a value does."""
    pipeline = Pipeline(Repository(migrated(sqlite_url)), TOPICS)
    document = event("lead.created")
    reordered = dict(reversed(list(document.items())))
    traced = {**document, "trace": {"span": [{"id": 1}] * 3}}
    assert not pipeline.process(messages_for([document])).dead_letters
    again = pipeline.process(messages_for([reordered, traced]))
    assert again.outcomes == Counter({("leads", "lead.created", Outcome.DUPLICATE): 2})
    respelled = {**document, "occurred_at": document["occurred_at"].replace("Z", "+00:00")}
    assert [d.error_class for d in pipeline.process(messages_for([respelled])).dead_letters] == [ErrorClass.CONFLICT]


# --- a reply lost after the commit (#19, item 6) ---------------------------------------------------
def test_a_batch_retried_after_its_reply_was_lost_reports_what_it_committed(database_url: str) -> None:
    """The pipeline process died after the commit: the retry saw only duplicates, so the batch's counts
    were never recorded and its transitions waited for a restart. Now it answers what had committed."""
    engine = migrated(database_url)
    pipeline = Pipeline(Repository(engine), TOPICS)
    messages = messages_for(
        [
            event("lead.created", "c-1"),
            event("deal.won", "c-1"),
            event("lead.created", "c-2"),
            event("deal.won", "x" * 65),
        ]
    )
    first = pipeline.process(messages, batch_id="w-1")  # its reply lost
    retried = pipeline.process(messages, batch_id="w-1", resume=True)
    assert first.transitions and retried.transitions == first.transitions
    assert retried.observations.keys() == first.observations.keys() - {("event_delay", ())}  # not kept
    assert retried.observations[("conversion", ())] == [1.0]
    assert retried.outcomes == first.outcomes
    assert [d.message.offset for d in retried.dead_letters] == [3]  # found again, not kept
    # once the worker has the result, the next batch's transaction forgets it
    pipeline.process(messages_for([event("lead.created", "c-3")]), batch_id="w-2", settled=["w-1"])
    assert pipeline.repository.saved_parts("w-1") == []
    assert len(pipeline.repository.saved_parts("w-2")) == 1


def test_a_split_batch_retried_after_an_outage_reports_its_committed_half(sqlite_url: str) -> None:
    """A poison message splits the batch; the outage hits after the first half committed. The retry
    reports that half's figures from its kept part and processes the rest: nothing counted twice or lost."""
    pipeline = Pipeline(Repository(migrated(sqlite_url)), TOPICS)
    documents = [event("lead.created", f"c-{n}") for n in range(4)]
    messages = messages_for(documents)
    calls = 0
    save = pipeline.repository.save

    def failing_save(*args: Any, **kwargs: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:  # the whole batch: a data fault, so it is split
            raise ValueError("poison")
        if calls == 3:  # the second half: the database goes away
            raise sqlalchemy.exc.OperationalError("COMMIT", {}, OSError("connection lost"))
        save(*args, **kwargs)

    with mock.patch.object(pipeline.repository, "save", failing_save), pytest.raises(sqlalchemy.exc.OperationalError):
        pipeline.process(messages, batch_id="w-1")
    retried = pipeline.process(messages, batch_id="w-1", resume=True)
    assert retried.outcomes == Counter({("leads", "lead.created", Outcome.PROCESSED): 4})
    assert sorted(t.customer_id for t in retried.transitions) == ["c-0", "c-1", "c-2", "c-3"]
    assert retried.observations[("lead_created", ("web",))] == [1.0] * 4


# --- retention and history (#19, item 8) -----------------------------------------------------------
def test_expired_dedup_records_are_pruned_in_short_transactions(database_url: str) -> None:
    """Kept until 30 days (the setting) past the later of occurred_at and processing; pruned a limit at a
    time. The stated consequence: a redelivery after that is applied again."""
    engine = migrated(database_url)
    now = datetime(2026, 6, 1)
    pipeline = Pipeline(Repository(engine), TOPICS, dedup_retention=timedelta(days=30), clock=lambda: now)
    old = [event("lead.created", f"old-{n}", at="2026-01-01T00:00:00Z") for n in range(5)]
    late = event("lead.created", "late", at="2025-01-01T00:00:00Z")
    recent = event("lead.created", "recent", at="2026-06-20T00:00:00Z")  # ahead of the clock: kept from then
    pipeline.process(messages_for([*old, late, recent]))
    repository = pipeline.repository
    assert repository.prune(now + timedelta(days=29), parts_before=now) == 0  # processed 29 days ago
    assert repository.prune(now + timedelta(days=32), parts_before=now, limit=4) == 4
    assert repository.prune(now + timedelta(days=32), parts_before=now, limit=4) == 2
    with Session(engine) as session:
        assert session.scalars(select(ProcessedEvent.event_id)).all() == [recent["event_id"]]
    again = pipeline.process(messages_for([old[0], recent]))
    assert again.outcomes == Counter(
        {("leads", "lead.created", Outcome.PROCESSED): 1, ("leads", "lead.created", Outcome.DUPLICATE): 1}
    )


def test_no_retention_keeps_the_dedup_records(sqlite_url: str) -> None:
    pipeline = Pipeline(Repository(migrated(sqlite_url)), TOPICS, dedup_retention=None)
    pipeline.process(messages_for([event("lead.created", at="2020-01-01T00:00:00Z")]))
    assert pipeline.repository.prune(datetime(9999, 1, 1), parts_before=datetime(2020, 1, 1)) == 0


def test_an_event_reads_only_the_deals_it_names(database_url: str) -> None:
    """Every event read all of its customer's deals (216 us for a ticket with 5,000 deals, 3 us with 10):
    the stage rule now reads the customer's counts of deals by status."""
    engine = migrated(database_url)
    pipeline = Pipeline(Repository(engine), TOPICS)
    pipeline.process(messages_for([event("deal.won", deal_id=f"d-{n}") for n in range(50)]))
    asked: list[str] = []

    @sqlalchemy.event.listens_for(engine, "before_cursor_execute")
    def record(_connection: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("SELECT") and "FROM deals" in statement:
            asked.append(statement)

    pipeline.process(messages_for([event("ticket.opened"), event("deal.lost", deal_id="d-7")]))
    assert len(asked) == 1 and "deals.deal_id" in asked[0]
    with Session(engine) as session:
        customer = session.get(Customer, "c-1")
        assert customer is not None and (customer.won_deals, customer.lost_deals) == (50, 0)


def test_time_in_the_previous_stage_is_recorded_published_and_answered(database_url: str) -> None:
    engine = migrated(database_url)
    repository = Repository(engine)
    pipeline = Pipeline(repository, TOPICS)
    pipeline.process(messages_for([event("lead.created", at="2026-01-01T00:00:00Z")]))
    result = pipeline.process(messages_for([event("deal.opened", at="2026-01-03T12:00:00Z")]))
    (transition,) = result.transitions
    assert transition.seconds_in_previous_stage == 2.5 * 86400
    message = orjson.loads(transition_message(transition))
    assert message["previous_stage_entered_at"] == "2026-01-01T00:00:00Z"
    assert message["seconds_in_previous_stage"] == 216000.0
    # the outbox replays them as recorded
    assert [t for _, t in repository.unpublished_transitions()][-1] == transition
    journey = customer_journey(engine, "c-1")
    assert journey is not None
    assert [entry["seconds_in_previous_stage"] for entry in journey["journey"]] == [None, 216000.0]
    # an open deal without a declared kind has none yet; no churn, referral, rating or NPS answer
    assert [(deal["status"], deal["kind"]) for deal in journey["deals"]] == [("open", None)]
    assert {name: journey[name] for name in ("churns", "churned_at", "referred_by", "csat_band", "nps_score")} == {
        "churns": 0,
        "churned_at": None,
        "referred_by": None,
        "csat_band": "none",
        "nps_score": None,
    }


def test_a_win_earlier_than_the_first_takes_its_place_from_another_batch(database_url: str) -> None:
    """The first won deal, new business by default, is read with the customer when a win arrives: an
    earlier one makes it expansion."""
    engine = migrated(database_url)
    pipeline = Pipeline(Repository(engine), TOPICS)
    pipeline.process(messages_for([event("deal.won", deal_id="d-late", at="2026-02-01T00:00:00Z", amount=100)]))
    churn = event("customer.churned", at="2026-03-01T00:00:00Z", reason="price")
    early = event("deal.won", deal_id="d-early", at="2026-01-01T00:00:00Z", amount=200)
    result = pipeline.process(messages_for([early, churn]))
    observed = result.observations
    assert observed["deal_won_retracted", ("ana", "new_business")] == [1.0]
    assert observed["revenue_won_retracted", ("EUR", "ana", "new_business")] == [100.0]
    assert observed["revenue_won", ("EUR", "ana", "expansion")] == [100.0]
    assert observed["revenue_won", ("EUR", "ana", "new_business")] == [200.0]
    assert observed["churn", ("none",)] == [1.0]
    with Session(engine) as session:
        customer = session.get(Customer, "c-1")
        assert customer is not None
        assert (customer.stage, customer.first_won_deal_id, customer.churns) == ("churned", "d-early", 1)
        assert customer.won_revenue == {"EUR": 300.0}
        assert [fact[2] for fact in customer.commercial_facts or []] == ["won", "won", "churned"]
        assert session.execute(select(Churn.event_id, Churn.reason)).all() == [(churn["event_id"], "price")]
