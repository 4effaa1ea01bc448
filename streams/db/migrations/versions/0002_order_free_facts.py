"""Order-free facts: deal counts by status per customer, the latest-fact keys, per-ticket resolution
counts and the facts held until a ticket's opening, content digests and retention of the dedup
records, and the committed parts of a batch kept until the worker has their figures.

Rows written before this revision get what can be derived from them: a customer's deal counts from its
deals; a resolved ticket one resolution (a first-contact one if its contacts were 1). Their latest-fact
event ids and their dedup records' digests stay NULL (a NULL digest is taken for a match, as before).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STATUSES = ("won", "open", "lost")
_RESOLUTION_COUNTS = ("resolutions", "first_contact_resolutions")


def upgrade() -> None:
    with op.batch_alter_table("customers") as table:
        for name in ("won_deals", "open_deals", "lost_deals"):
            table.add_column(sa.Column(name, sa.Integer(), nullable=False, server_default="0"))
    customers = sa.table("customers", sa.column("customer_id"), *(sa.column(f"{s}_deals") for s in _STATUSES))
    deals = sa.table("deals", sa.column("customer_id"), sa.column("status"))
    for status in _STATUSES:
        count = (
            sa.select(sa.func.count())
            .where(deals.c.customer_id == customers.c.customer_id, deals.c.status == status)
            .scalar_subquery()
        )
        op.execute(customers.update().values({f"{status}_deals": count}))
    with op.batch_alter_table("deals") as table:
        table.add_column(sa.Column("pipeline_stage_event_id", sa.String(128), nullable=True))
    with op.batch_alter_table("tickets") as table:
        table.add_column(sa.Column("resolved_event_id", sa.String(128), nullable=True))
        table.add_column(sa.Column("resolutions", sa.Integer(), nullable=False, server_default="0"))
        table.add_column(sa.Column("first_contact_resolutions", sa.Integer(), nullable=False, server_default="0"))
        table.add_column(sa.Column("csat_event_id", sa.String(128), nullable=True))
        table.add_column(sa.Column("early_resolutions", sa.JSON(), nullable=True))
        table.add_column(sa.Column("early_reopens", sa.Integer(), nullable=False, server_default="0"))
    tickets = sa.table("tickets", sa.column("resolved_at"), sa.column("contacts"), *map(sa.column, _RESOLUTION_COUNTS))
    op.execute(tickets.update().where(tickets.c.resolved_at.is_not(None)).values(resolutions=1))
    op.execute(tickets.update().where(tickets.c.contacts == 1).values(first_contact_resolutions=1))
    with op.batch_alter_table("processed_events") as table:
        table.add_column(sa.Column("digest", sa.BigInteger(), nullable=True))
        table.add_column(sa.Column("kept_until", sa.DateTime(), nullable=True))
    op.create_index("ix_processed_events_kept_until", "processed_events", ["kept_until"])
    op.create_table(
        "batch_parts",
        sa.Column("batch_id", sa.String(64), nullable=False),
        sa.Column("part", sa.Integer(), nullable=False),
        sa.Column("committed_at", sa.DateTime(), nullable=False),
        sa.Column("result", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("batch_id", "part"),
    )
    op.create_index("ix_batch_parts_committed_at", "batch_parts", ["committed_at"])


def downgrade() -> None:
    op.drop_table("batch_parts")
    op.drop_index("ix_processed_events_kept_until", "processed_events")
    with op.batch_alter_table("processed_events") as table:
        for name in ("digest", "kept_until"):
            table.drop_column(name)
    with op.batch_alter_table("tickets") as table:
        for name in (
            "resolved_event_id",
            "resolutions",
            "first_contact_resolutions",
            "csat_event_id",
            "early_resolutions",
            "early_reopens",
        ):
            table.drop_column(name)
    with op.batch_alter_table("deals") as table:
        table.drop_column("pipeline_stage_event_id")
    with op.batch_alter_table("customers") as table:
        for name in ("won_deals", "open_deals", "lost_deals"):
            table.drop_column(name)
