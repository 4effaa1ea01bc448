"""Kept states: the pipeline writes the read model it writes without them, reads less, and forgets them
when they may be wrong (a failed transaction; a rebalance, in tests/streams/test_batches.py)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from sqlalchemy import Engine, event

from streams.cli.simulator import simulate
from streams.db.queries import stage_counts
from streams.db.repository import Repository
from streams.db.state_cache import StateCache
from streams.domain.journey import CustomerState, DealState, TicketState
from streams.pipeline.service import Pipeline
from tests.support import TOPICS, messages_for, migrated, table_snapshot
from tests.support import event as lifecycle_event


def pipeline_on(url: str, kept: int) -> Pipeline:
    return Pipeline(Repository(migrated(url), state_cache_customers=kept), TOPICS)


def customers_read(engine: Engine) -> list[int]:
    """Records how many customers each SELECT of customers asks for (SQLite binds each id, PostgreSQL
    one array of them)."""
    asked: list[int] = []

    @event.listens_for(engine, "before_cursor_execute")
    def record(_connection: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.startswith("SELECT") and "WHERE customers.customer_id" in statement:
            asked.append(len(parameters["values"]) if isinstance(parameters, dict) else len(parameters))

    return asked


@pytest.mark.parametrize("kept", [40, 20_000], ids=["fewer-than-the-customers", "all"])
def test_kept_states_give_the_read_model_that_reading_everything_gives(
    database_url: str, tmp_path: Path, kept: int
) -> None:
    """A shuffled stream with every event twice, in batches: the same tables as a pipeline that reads
    all it touches (with 40 kept, customers are dropped and read again)."""
    simulation = simulate(400, seed=5)
    messages = messages_for(simulation.events)
    stream = messages + messages
    random.Random(3).shuffle(stream)
    cached, reference = pipeline_on(database_url, kept), pipeline_on(f"sqlite:///{tmp_path / 'reference.db'}", 0)
    asked, reference_asked = customers_read(cached.repository.engine), customers_read(reference.repository.engine)
    for start in range(0, len(stream), 150):
        batch = stream[start : start + 150]
        assert cached.process(batch).outcomes == reference.process(batch).outcomes
    # the kept customers were not read again
    assert 0 < sum(asked) < sum(reference_asked)
    assert table_snapshot(cached.repository.engine) == table_snapshot(reference.repository.engine)
    assert stage_counts(cached.repository.engine) == {k: v for k, v in simulation.expected.stages.items() if v}
    assert len(cached.repository.cache) == min(kept, simulation.expected.customers)


def test_a_failed_transaction_forgets_the_kept_states(sqlite_url: str) -> None:
    """The domain changes kept states in place: a batch that does not commit must not leave its changes
    behind, or its retry finds the lead already qualified and skips it as a repeat."""
    pipeline = pipeline_on(sqlite_url, 100)
    repository = pipeline.repository
    pipeline.process(messages_for([lifecycle_event("lead.created", "c-1")]))
    assert len(repository.cache) == 1
    qualified = messages_for([lifecycle_event("lead.qualified", "c-1", at="2026-03-02T10:00:00Z")])
    with (
        mock.patch.object(repository, "_insert", side_effect=OSError("disk I/O error")),
        pytest.raises(OSError, match="disk I/O error"),
    ):
        pipeline.process(qualified)
    assert len(repository.cache) == 0
    retried = pipeline.process(qualified)
    assert [(t.from_stage, t.to_stage) for t in retried.transitions] == [("lead", "qualified")]
    assert stage_counts(repository.engine) == {"qualified": 1}


def test_the_least_recently_used_customer_goes_first() -> None:
    cache = StateCache(2)
    cache.remember([CustomerState("c-1"), CustomerState("c-2")], [DealState("d-1", "c-1")], [TicketState("t-1", "c-1")])
    assert cache.customers(["c-1"])[1] == []  # c-1 used: c-2 is now the oldest
    cache.remember([CustomerState("c-3")], [], [])
    customers, missed = cache.customers(["c-1", "c-2", "c-3"])
    assert sorted(customers) == ["c-1", "c-3"]
    assert missed == ["c-2"]
    assert cache.tickets(["t-1", "t-2"])[1] == ["t-2"]
    assert cache.deals(["d-1", "d-2"])[1] == ["d-2"]


def test_nothing_is_kept_when_the_cache_has_no_room() -> None:
    cache = StateCache(0)
    cache.remember([CustomerState("c-1")], [], [TicketState("t-1", "c-1")])
    assert len(cache) == 0
    assert cache.tickets(["t-1"])[1] == ["t-1"]
