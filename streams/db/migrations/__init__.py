"""Schema migrations through Alembic, configured in code (no alembic.ini).

Alembic because the schema changes from release to release: ordered revisions, batch mode for
SQLite's missing ALTERs, and autogenerate to write a revision from a change to :mod:`streams.db.models`.
An upgrade runs in one transaction on either database, DDL included: a failed one leaves nothing behind.
A new revision: ``alembic.command.revision(alembic_config(connection), "message", autogenerate=True,
rev_id="0002")`` on a database at head, then review the file written to ``versions/``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext, MigrationInfo
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Connection, Engine, Integer, MetaData, String, Table, inspect, select

from streams.db.models import Base

log = logging.getLogger(__name__)

BASELINE = "0001"  # the schema of the hand-written migrations' version 1
VERSION_TABLE = "alembic_version"  # Alembic's default

# the version table of a database made before Alembic (hand-written steps, version 1 only): such a
# database has the baseline's tables, and is stamped at BASELINE
_legacy = Table(
    "schema_migrations",
    MetaData(),
    Column("version", Integer, primary_key=True),
    Column("description", String(200), nullable=False),
)


def alembic_config(connection: Connection | None = None) -> Config:
    """The Alembic configuration of this package; env.py runs its migrations on ``connection``."""
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent).replace("%", "%%"))
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "no revisions in streams/db/migrations/versions"
    return head


def upgrade(engine: Engine) -> list[str]:
    """Bring the schema to head; returns the revisions applied (empty when up to date)."""
    with _transaction(engine) as connection:
        return _upgrade(connection)


def current_revision(engine: Engine) -> str | None:
    """None for a database Alembic has not migrated (empty, or made before Alembic)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def reset(engine: Engine) -> None:
    """Drop the read model and build it again from the revisions (for `lifecycle rebuild`), in one transaction.

    At head the tables are exactly those of :mod:`streams.db.models` (tests/streams/db/test_migrations.py
    compares them), so dropping the models' tables and the version table drops all the revisions made,
    without relying on downgrades.
    """
    with _transaction(engine) as connection:
        _upgrade(connection)
        Base.metadata.drop_all(connection)
        Table(VERSION_TABLE, MetaData()).drop(connection)
        _upgrade(connection)


def _upgrade(connection: Connection) -> list[str]:
    _adopt_legacy(connection)
    applied: list[str] = []

    def record(*, step: MigrationInfo, **_: object) -> None:
        if step.is_upgrade and not step.is_stamp and step.up_revision_id is not None:
            applied.append(step.up_revision_id)

    config = alembic_config(connection)
    config.attributes["on_version_apply"] = record
    command.upgrade(config, "head")
    return applied


def _adopt_legacy(connection: Connection) -> None:
    """A database made by the hand-written migrations has the baseline's tables already: stamp it at
    BASELINE instead of creating them again, and drop ``schema_migrations``."""
    if not inspect(connection).has_table(_legacy.name):
        return
    versions = sorted(connection.scalars(select(_legacy.c.version)))
    if versions != [1]:
        raise RuntimeError(f"schema_migrations holds versions {versions}, not [1]: rebuild this database")
    if MigrationContext.configure(connection).get_current_revision() is None:
        command.stamp(alembic_config(connection), BASELINE)
        log.info("schema_migrations version 1 stamped as revision %s", BASELINE)
    _legacy.drop(connection)


@contextmanager
def _transaction(engine: Engine) -> Iterator[Connection]:
    """``engine.begin()``, and on SQLite an explicit ``BEGIN IMMEDIATE``: Python's sqlite3 driver
    starts no transaction before DDL (each statement would commit on its own), and taking the write
    lock first has a second writer wait for the busy timeout instead of failing mid-upgrade."""
    with engine.begin() as connection:
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        yield connection
