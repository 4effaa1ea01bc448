"""Alembic migrations on SQLite and on a real PostgreSQL: fresh, repeated, from a pre-Alembic database, reset."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    func,
    insert,
    inspect,
    select,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from streams.db.engine import make_engine
from streams.db.migrations import (
    BASELINE,
    VERSION_TABLE,
    alembic_config,
    current_revision,
    head_revision,
    reset,
    upgrade,
)
from streams.db.models import Base, Customer, ProcessedEvent, StageTransition, Ticket
from streams.db.repository import Repository
from streams.pipeline.service import Pipeline
from tests.support import TOPICS, event, messages_for

# The schema that the hand-written migrations' version 1 made (Base.metadata of that day, and their
# version table), frozen here: later model changes must not change what a legacy database is.
_legacy = MetaData()
Table(
    "customers",
    _legacy,
    Column("customer_id", String(64), primary_key=True),
    Column("stage", String(16), index=True),
    Column("first_seen_at", DateTime),
    Column("stage_changed_at", DateTime),
    Column("converted_at", DateTime),
    Column("first_lead_at", DateTime),
    Column("qualification", String(16)),
    Column("qualification_at", DateTime),
    Column("qualification_event_id", String(128)),
    Column("recent_csat", JSON, nullable=False),
)
Table(
    "deals",
    _legacy,
    Column("deal_id", String(128), primary_key=True),
    Column("customer_id", String(64), nullable=False, index=True),
    Column("status", String(16), nullable=False, index=True),
    Column("pipeline_stage", String(16)),
    Column("pipeline_stage_at", DateTime),
    Column("amount", Numeric(20, 4, asdecimal=False)),
    Column("currency", String(3)),
    Column("owner", String(128), index=True),
    Column("opened_at", DateTime),
    Column("won_at", DateTime),
    Column("lost_at", DateTime),
    Column("closed_at", DateTime),
)
Table(
    "tickets",
    _legacy,
    Column("ticket_id", String(128), primary_key=True),
    Column("customer_id", String(64), nullable=False, index=True),
    Column("status", String(16), nullable=False, index=True),
    Column("status_at", DateTime),
    Column("status_event_id", String(128)),
    Column("channel", String(16)),
    Column("priority", String(16)),
    Column("opened_at", DateTime),
    Column("first_response_at", DateTime),
    Column("resolved_at", DateTime),
    Column("handling_seconds", Float),
    Column("contacts", Integer),
    Column("csat_score", Integer),
    Column("csat_at", DateTime),
)
Table(
    "stage_transitions",
    _legacy,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("customer_id", String(64), nullable=False, index=True),
    Column("from_stage", String(16)),
    Column("to_stage", String(16), nullable=False),
    Column("occurred_at", DateTime, nullable=False),
    Column("event_id", String(128), nullable=False, unique=True),
    Column("published", Boolean, nullable=False),
    Index("ix_stage_transitions_unpublished", "published"),
)
legacy_processed_events = Table("processed_events", _legacy, Column("event_id", String(128), primary_key=True))
legacy_customers = _legacy.tables["customers"]
schema_migrations = Table(
    "schema_migrations",
    _legacy,
    Column("version", Integer, primary_key=True),
    Column("description", String(200), nullable=False),
)


def make_legacy_database(engine: Engine) -> None:
    """A database as the code before Alembic left it: the read model, schema_migrations at 1, some rows."""
    with engine.begin() as connection:
        _legacy.create_all(connection)
        connection.execute(
            schema_migrations.insert().values(
                version=1, description="read model: customers, deals, tickets, stage_transitions, processed_events"
            )
        )
        connection.execute(
            legacy_customers.insert(),
            [
                {
                    "customer_id": "c-1",
                    "stage": "customer",
                    "first_seen_at": datetime(2026, 3, 1, 10),
                    "recent_csat": [["t-1", 5]],
                },
                {"customer_id": "c-2", "stage": "lead", "first_seen_at": None, "recent_csat": []},
            ],
        )
        connection.execute(legacy_processed_events.insert(), [{"event_id": f"ev-{n}"} for n in range(3)])


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def all_revisions() -> list[str]:
    """From the baseline to head, in the order they apply."""
    script = ScriptDirectory.from_config(alembic_config())
    return [revision.revision for revision in reversed(list(script.walk_revisions()))]


def assert_schema_is_the_models(engine: Engine) -> None:
    """The database's tables are those of streams/db/models.py: Alembic's autogenerate finds nothing to
    do (columns, types, nullability, indexes, unique constraints), and the primary keys, which it does
    not compare, are the same."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True, "compare_server_default": True})
        assert compare_metadata(context, Base.metadata) == []
        inspector = inspect(connection)
        assert set(inspector.get_table_names()) == {*Base.metadata.tables, VERSION_TABLE}
        for name, table in Base.metadata.tables.items():
            assert [column["name"] for column in inspector.get_columns(name)] == [c.name for c in table.columns]
            pk = inspector.get_pk_constraint(name)["constrained_columns"]
            assert pk == [column.name for column in table.primary_key], name


def count(engine: Engine, model: type[Base]) -> int:
    with engine.connect() as connection:
        return int(connection.scalar(select(func.count()).select_from(model)) or 0)


def test_revisions_form_one_line_from_the_baseline() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    assert script.get_bases() == [BASELINE]
    assert script.get_heads() == [head_revision()]
    assert all_revisions()[0] == BASELINE


def test_fresh_database_gets_every_revision_and_the_models_schema(engine: Engine) -> None:
    assert current_revision(engine) is None
    assert upgrade(engine) == all_revisions()
    assert current_revision(engine) == head_revision()
    assert_schema_is_the_models(engine)


def test_upgrade_twice_applies_nothing(engine: Engine) -> None:
    assert upgrade(engine)
    assert upgrade(engine) == []
    assert current_revision(engine) == head_revision()


def test_legacy_database_is_stamped_at_the_baseline_and_keeps_its_rows(engine: Engine) -> None:
    make_legacy_database(engine)
    assert upgrade(engine) == all_revisions()[1:]  # the baseline's tables are there already
    assert current_revision(engine) == head_revision()
    assert not inspect(engine).has_table("schema_migrations")
    assert_schema_is_the_models(engine)
    with engine.connect() as connection:
        customers = connection.execute(select(Customer.customer_id, Customer.first_seen_at, Customer.recent_csat))
        assert sorted(customers) == [("c-1", datetime(2026, 3, 1, 10), [["t-1", 5]]), ("c-2", None, [])]
    assert count(engine, ProcessedEvent) == 3
    assert upgrade(engine) == []


def test_unknown_legacy_version_is_refused_and_nothing_changes(engine: Engine) -> None:
    make_legacy_database(engine)
    with engine.begin() as connection:
        connection.execute(schema_migrations.insert().values(version=2, description="unknown"))
    with pytest.raises(RuntimeError, match=r"versions \[1, 2\]"):
        upgrade(engine)
    assert inspect(engine).has_table("schema_migrations")
    assert current_revision(engine) is None


def test_failed_upgrade_leaves_nothing_behind(engine: Engine) -> None:
    """One transaction, DDL included (SQLite too): the baseline fails on its third table, and the two
    it created before are gone with the version table."""
    with engine.begin() as connection:
        Table("tickets", MetaData(), Column("unrelated", Integer)).create(connection)
    with pytest.raises(DBAPIError, match="tickets"):
        upgrade(engine)
    assert inspect(engine).get_table_names() == ["tickets"]


def test_reset_empties_the_read_model(engine: Engine) -> None:
    upgrade(engine)
    with engine.begin() as connection:
        connection.execute(insert(Customer).values(customer_id="c-1", recent_csat=[]))
        connection.execute(insert(ProcessedEvent).values(event_id="ev-1"))
        connection.execute(
            insert(StageTransition).values(
                customer_id="c-1", to_stage="lead", occurred_at=datetime(2026, 3, 1), event_id="ev-1", published=False
            )
        )
    reset(engine)
    assert current_revision(engine) == head_revision()
    assert [count(engine, model) for model in (Customer, ProcessedEvent, StageTransition)] == [0, 0, 0]
    assert_schema_is_the_models(engine)


def test_reset_of_a_legacy_database(engine: Engine) -> None:
    make_legacy_database(engine)
    reset(engine)
    assert current_revision(engine) == head_revision()
    assert not inspect(engine).has_table("schema_migrations")
    assert [count(engine, model) for model in (Customer, ProcessedEvent)] == [0, 0]


def test_revision_0002_derives_the_counts_of_existing_rows(engine: Engine) -> None:
    """Deals by status per customer (the stage rule reads only those now) and resolutions per ticket."""
    make_legacy_database(engine)
    deals, tickets = _legacy.tables["deals"], _legacy.tables["tickets"]
    with engine.begin() as connection:
        connection.execute(
            deals.insert(),
            [
                {"deal_id": f"d-{n}", "customer_id": "c-1", "status": status}
                for n, status in enumerate(["won", "won", "lost", "open", "pending"])
            ],
        )
        connection.execute(
            tickets.insert().values(customer_id="c-1"),
            [
                {"ticket_id": "t-1", "status": "resolved", "resolved_at": datetime(2026, 3, 2), "contacts": 1},
                {"ticket_id": "t-2", "status": "resolved", "resolved_at": datetime(2026, 3, 2), "contacts": 3},
                {"ticket_id": "t-3", "status": "open", "resolved_at": None, "contacts": None},
            ],
        )
    upgrade(engine)
    with engine.connect() as connection:
        counts = connection.execute(
            select(Customer.customer_id, Customer.won_deals, Customer.open_deals, Customer.lost_deals)
        )
        assert sorted(counts) == [("c-1", 2, 1, 1), ("c-2", 0, 0, 0)]
        resolutions = connection.execute(
            select(Ticket.ticket_id, Ticket.resolutions, Ticket.first_contact_resolutions, Ticket.early_reopens)
        )
        assert sorted(resolutions) == [("t-1", 1, 1, 0), ("t-2", 1, 0, 0), ("t-3", 0, 0, 0)]  # fmt: skip


def test_revision_0004_derives_commercial_facts_revenue_and_bands_of_existing_rows(engine: Engine) -> None:
    """Won deals become the customer's commercial facts (what churns are set against), its first won deal
    and its won revenue; its recent ratings its CSAT band."""
    make_legacy_database(engine)
    deals = _legacy.tables["deals"]
    wins = [("d-2", datetime(2026, 2, 1), 100.0, "EUR"), ("d-1", datetime(2026, 1, 1), 50.0, "USD")]
    wins.append(("d-3", datetime(2026, 3, 1), 25.0, "EUR"))
    with engine.begin() as connection:
        connection.execute(
            deals.insert().values(customer_id="c-1", status="won"),
            [{"deal_id": d, "won_at": at, "amount": amount, "currency": cur} for d, at, amount, cur in wins],
        )
        connection.execute(deals.insert().values(deal_id="d-4", customer_id="c-2", status="open", amount=9.0))
    upgrade(engine)
    with engine.connect() as connection:
        rows = connection.execute(
            select(
                Customer.customer_id,
                Customer.first_won_deal_id,
                Customer.won_revenue,
                Customer.commercial_facts,
                Customer.csat_band,
                Customer.churns,
            )
        )
        assert sorted(rows) == [
            (
                "c-1",
                "d-1",
                {"EUR": 125.0, "USD": 50.0},
                [[f"2026-0{m}-01T00:00:00.000000", "", "won"] for m in (1, 2, 3)],
                "high",
                0,
            ),
            ("c-2", None, {}, [], "none", 0),
        ]
    # the stage rule sets a churn against them: one after the last win is churned
    pipeline = Pipeline(Repository(engine), TOPICS)
    pipeline.process(messages_for([event("customer.churned", "c-1", at="2026-02-15T00:00:00Z")]))
    with Session(engine) as session:
        customer = session.get(Customer, "c-1")
        assert customer is not None and customer.stage == "customer"  # the 1 March win is later
