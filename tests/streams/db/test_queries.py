"""The read model's questions answer any text they are asked with, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from streams.db.queries import customer_journey
from streams.db.repository import Repository
from streams.pipeline.service import Pipeline
from tests.support import TOPICS, event, messages_for, migrated


@pytest.mark.parametrize("asked", ["a\x00b", "\x00", "x" * 65, "x" * 10_000, ""])
def test_a_customer_id_the_contract_refuses_is_unknown_not_an_error(database_url: str, asked: str) -> None:
    """`GET /customers/%00` was a 500 on PostgreSQL, which refuses a NUL in any text parameter."""
    engine = migrated(database_url)
    Pipeline(Repository(engine), TOPICS).process(messages_for([event("lead.created", "x" * 64)]))
    assert customer_journey(engine, asked) is None
    journey = customer_journey(engine, "x" * 64)
    assert journey is not None and journey["stage"] == "lead"
