"""Explicit, repeatable schema migrations.

Why not Alembic: the read model is rebuildable from the topics, has one owner (the worker) and
must run on SQLite and PostgreSQL from the same code; an ordered list of versioned steps, recorded
in ``schema_migrations`` and applied in one transaction, gives that without a second config tree.
Add a step by appending to :data:`MIGRATIONS`; never edit a released one.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Column, Connection, Engine, Integer, MetaData, String, Table, select

from streams.db.models import Base

Migration = Callable[[Connection], None]

_meta = MetaData()
schema_migrations = Table(
    "schema_migrations",
    _meta,
    Column("version", Integer, primary_key=True),
    Column("description", String(200), nullable=False),
)


def _v1_read_model(connection: Connection) -> None:
    Base.metadata.create_all(connection)


MIGRATIONS: list[tuple[int, str, Migration]] = [
    (1, "read model: customers, deals, tickets, stage_transitions, processed_events", _v1_read_model),
]


def upgrade(engine: Engine) -> list[int]:
    """Apply pending migrations; returns the versions applied (empty when up to date)."""
    with engine.begin() as connection:
        _meta.create_all(connection)
        done = set(connection.scalars(select(schema_migrations.c.version)))
        applied = []
        for version, description, step in MIGRATIONS:
            if version not in done:
                step(connection)
                connection.execute(schema_migrations.insert().values(version=version, description=description))
                applied.append(version)
        return applied


def current_version(engine: Engine) -> int:
    with engine.connect() as connection:
        if not engine.dialect.has_table(connection, "schema_migrations"):
            return 0
        return max(connection.scalars(select(schema_migrations.c.version)), default=0)


def reset(engine: Engine) -> None:
    """Drop the read model and build it again from the migrations (for `lifecycle rebuild`)."""
    with engine.begin() as connection:
        Base.metadata.drop_all(connection)
        _meta.drop_all(connection)
    upgrade(engine)
