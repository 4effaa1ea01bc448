"""Alembic's environment: runs on the connection (and in the transaction) that the caller passes in
``config.attributes["connection"]``; see :func:`streams.db.migrations.alembic_config`."""

from __future__ import annotations

from alembic import context

from streams.db.models import Base

if context.is_offline_mode():
    raise RuntimeError("offline (--sql) migrations are not supported: pass a connection")

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("no connection: build the config with streams.db.migrations.alembic_config(connection)")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite alters a table by copying it into a new one: batch mode does that for op.alter_column & co
    render_as_batch=connection.dialect.name == "sqlite",
    # the caller's transaction holds the DDL, on SQLite too (streams.db.migrations._transaction)
    transactional_ddl=True,
    on_version_apply=context.config.attributes.get("on_version_apply"),
)
with context.begin_transaction():
    context.run_migrations()
