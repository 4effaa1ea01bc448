"""No message can stop the pipeline: what a message makes fail is dead-lettered, the rest commits;
only the database's own faults are raised, for the caller to wait out."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine
from sqlalchemy.exc import DataError, OperationalError

from streams.db.repository import Repository
from streams.domain.errors import ErrorClass
from streams.domain.events import Event
from streams.domain.journey import Applied, Journeys, Outcome
from streams.kafka.broker import free_port
from streams.pipeline.service import Pipeline, rejection_reason
from tests.support import TOPICS, event, messages_for, migrated, table_snapshot


class CountedTransactions(Repository):
    """A repository that counts its transactions: the cost of finding the messages at fault."""

    transactions = 0

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Any]:
        self.transactions += 1
        with super().transaction() as session:
            yield session


@pytest.fixture
def poisoned(monkeypatch: pytest.MonkeyPatch) -> None:
    """Events of customers named ``poison-*`` make applying them fail, as an unforeseen bug would."""
    apply = Journeys.apply

    def failing(self: Journeys, event: Event) -> Applied:
        if event.customer_id.startswith("poison-"):
            raise TypeError(f"cannot apply {event.event_id}")
        return apply(self, event)

    monkeypatch.setattr(Journeys, "apply", failing)


@pytest.fixture
def refused_by_the_database(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches holding a customer named ``poison-*`` fail in the write, as a database refusal would."""
    save = Repository.save

    def failing(self: Repository, session: Any, working: Any, **kwargs: Any) -> None:
        refused = sorted(c for c in working.journeys.changed_customers if c.startswith("poison-"))
        if refused:
            raise ValueError(f"the database refuses {refused[0]}")
        save(self, session, working, **kwargs)

    monkeypatch.setattr(Repository, "save", failing)


def stream(customers: int) -> list[dict[str, Any]]:
    return [
        item
        for n in range(customers)
        for item in (
            event("lead.created", f"c-{n}", lead_id=f"l-{n}"),
            event("deal.opened", f"c-{n}", deal_id=f"d-{n}"),
            event("deal.won", f"c-{n}", deal_id=f"d-{n}"),
        )
    ]


@pytest.mark.parametrize("bad", [1, 3])
@pytest.mark.parametrize(
    ("fault", "reason"),
    [("poisoned", "TypeError: cannot apply ev-"), ("refused_by_the_database", "ValueError: the database refuses")],
)
def test_the_messages_at_fault_are_dead_lettered_and_the_rest_commits(
    database_url: str, bad: int, fault: str, reason: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Applying fails at the message; writing fails for the whole batch: both are halved to the message."""
    request.getfixturevalue(fault)
    events = stream(40)  # 120 events
    poison_at = [7, 61, 118][:bad]
    for index in poison_at:
        events[index] = event("lead.created", f"poison-{index}")
    repository = CountedTransactions(migrated(database_url), state_cache_customers=1000)
    result = Pipeline(repository, TOPICS).process(messages_for(events))

    assert [(d.message.offset, d.error_class) for d in result.dead_letters] == [
        (i, ErrorClass.REJECTED) for i in poison_at
    ]
    assert all(d.reason.startswith(reason) for d in result.dead_letters)
    assert sum(n for (_, _, outcome), n in result.outcomes.items() if outcome is Outcome.PROCESSED) == 120 - bad
    assert sum(result.outcomes.values()) == 120
    # O(k log n): at most 2 transactions per level of the halving for each message at fault, plus the first
    assert repository.transactions <= 1 + 2 * bad * (120).bit_length()

    # the committed state is what the good messages alone make, and the kept states agree with it
    clean = [e for i, e in enumerate(events) if i not in poison_at]
    expected = migrated(f"sqlite:///{tmp_path / 'expected.db'}")
    Pipeline(Repository(expected), TOPICS).process(messages_for(clean))
    assert table_snapshot(repository.engine) == table_snapshot(expected)
    again = Pipeline(Repository(repository.engine), TOPICS).process(messages_for(events))
    assert [d.message.offset for d in again.dead_letters] == poison_at  # still at fault, still not applied
    assert sum(n for (_, _, o), n in again.outcomes.items() if o is Outcome.PROCESSED) == 0
    follow_up = Pipeline(repository, TOPICS).process(messages_for([event("csat.submitted", "c-8", score=1)]))
    assert not follow_up.dead_letters


@pytest.mark.usefixtures("poisoned")
def test_a_failed_attempt_leaves_nothing_in_the_kept_states(database_url: str) -> None:
    """The first attempt applied c-1's win before the poison failed it: c-1 must not stay won in memory."""
    repository = Repository(migrated(database_url), state_cache_customers=1000)
    pipeline = Pipeline(repository, TOPICS)
    pipeline.process(messages_for([event("deal.opened", "c-1", deal_id="d-1")]))
    result = pipeline.process(
        messages_for([event("deal.won", "c-1", deal_id="d-1"), event("lead.created", "poison-2")])
    )
    assert [d.error_class for d in result.dead_letters] == [ErrorClass.REJECTED]
    assert [t.to_stage.value for t in result.transitions] == ["customer"]  # counted once, from the commit
    kept, _ = repository.cache.customers(["c-1", "poison-2"])
    assert "poison-2" not in kept and all(state.converted_at is not None for state in kept.values())
    snapshot = table_snapshot(repository.engine)
    assert [(row[0], row[1]) for row in snapshot["customers"]] == [("c-1", "customer")]
    follow_up = pipeline.process(
        messages_for([event("ticket.opened", "c-1", ticket_id="t-1"), event("csat.submitted", "c-1", score=1)])
    )
    assert [(t.from_stage, t.to_stage) for t in follow_up.transitions] == [("customer", "at_risk")]


def test_extra_fields_named_like_ids_are_ignored_on_other_types(database_url: str) -> None:
    """Only deal.* name a deal and only ticket.* and csat.* a ticket: the same names elsewhere are extra
    fields (an object there made the batch fail; another customer's id made it a conflict)."""
    pipeline = Pipeline(Repository(migrated(database_url)), TOPICS)
    setup = pipeline.process(
        messages_for([event("deal.opened", "c-1", deal_id="d-1"), event("ticket.opened", "c-1", ticket_id="t-1")])
    )
    assert not setup.dead_letters
    result = pipeline.process(
        messages_for(
            [
                event("lead.created", "c-2", ticket_id={"x": 1}),
                event("lead.created", "c-3", deal_id=5, ticket_id="t-1"),
                event("lead.qualified", "c-4", deal_id="d-1"),
                event("ticket.opened", "c-5", ticket_id="t-5", deal_id={"nested": ["d-1"]}),
            ]
        )
    )
    assert not result.dead_letters
    assert sum(n for (_, _, o), n in result.outcomes.items() if o is Outcome.PROCESSED) == 4


def test_a_nul_character_is_refused_before_the_database_sees_it(database_url: str) -> None:
    pipeline = Pipeline(Repository(migrated(database_url)), TOPICS)
    result = pipeline.process(
        messages_for(
            [event("deal.won", "c-1", owner="an\x00a"), event("lead.created", "c-2"), event("lead.created", "c\x003")]
        )
    )
    assert [(d.message.offset, d.error_class) for d in result.dead_letters] == [
        (0, ErrorClass.INVALID_FIELD),
        (2, ErrorClass.INVALID_FIELD),
    ]
    assert [row[0] for row in table_snapshot(pipeline.repository.engine)["customers"]] == ["c-2"]


def test_an_unreachable_database_is_raised_for_the_caller_to_wait_out() -> None:
    engine = create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/x?connect_timeout=2")
    with pytest.raises(OperationalError):
        Pipeline(Repository(engine), TOPICS).process(messages_for([event("lead.created", "c-1")]))


def test_a_driver_error_is_named_without_the_batch_statement() -> None:
    """SQLAlchemy's wrapper would put the statement and every row's values of the batch in the reason."""
    wrapped = DataError("INSERT INTO customers VALUES (?, ?)", [("c-1", "secret-ish")] * 500, ValueError("refused"))
    assert rejection_reason(wrapped) == "ValueError: refused"
    assert rejection_reason(TypeError("unhashable type: 'dict'")) == "TypeError: unhashable type: 'dict'"
