"""Baseline: the read model as the hand-written migrations' version 1 made it.

Written out table by table, not ``Base.metadata.create_all``: a revision is the schema at that
revision, and later changes to streams/db/models.py belong to later revisions. A database made
before Alembic (``schema_migrations`` at version 1) is stamped at this revision, not created again.

Revision ID: 0001
Revises: none
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("stage", sa.String(16), nullable=True),
        sa.Column("first_seen_at", sa.DateTime(), nullable=True),
        sa.Column("stage_changed_at", sa.DateTime(), nullable=True),
        sa.Column("converted_at", sa.DateTime(), nullable=True),
        sa.Column("first_lead_at", sa.DateTime(), nullable=True),
        sa.Column("qualification", sa.String(16), nullable=True),
        sa.Column("qualification_at", sa.DateTime(), nullable=True),
        sa.Column("qualification_event_id", sa.String(128), nullable=True),
        sa.Column("recent_csat", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("customer_id"),
    )
    op.create_index("ix_customers_stage", "customers", ["stage"])

    op.create_table(
        "deals",
        sa.Column("deal_id", sa.String(128), nullable=False),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("pipeline_stage", sa.String(16), nullable=True),
        sa.Column("pipeline_stage_at", sa.DateTime(), nullable=True),
        sa.Column("amount", sa.Numeric(20, 4, asdecimal=False), nullable=True),
        sa.Column("currency", sa.String(3), nullable=True),
        sa.Column("owner", sa.String(128), nullable=True),
        sa.Column("opened_at", sa.DateTime(), nullable=True),
        sa.Column("won_at", sa.DateTime(), nullable=True),
        sa.Column("lost_at", sa.DateTime(), nullable=True),
        sa.Column("closed_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("deal_id"),
    )
    op.create_index("ix_deals_customer_id", "deals", ["customer_id"])
    op.create_index("ix_deals_status", "deals", ["status"])
    op.create_index("ix_deals_owner", "deals", ["owner"])

    op.create_table(
        "tickets",
        sa.Column("ticket_id", sa.String(128), nullable=False),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_at", sa.DateTime(), nullable=True),
        sa.Column("status_event_id", sa.String(128), nullable=True),
        sa.Column("channel", sa.String(16), nullable=True),
        sa.Column("priority", sa.String(16), nullable=True),
        sa.Column("opened_at", sa.DateTime(), nullable=True),
        sa.Column("first_response_at", sa.DateTime(), nullable=True),
        sa.Column("resolved_at", sa.DateTime(), nullable=True),
        sa.Column("handling_seconds", sa.Float(), nullable=True),
        sa.Column("contacts", sa.Integer(), nullable=True),
        sa.Column("csat_score", sa.Integer(), nullable=True),
        sa.Column("csat_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("ticket_id"),
    )
    op.create_index("ix_tickets_customer_id", "tickets", ["customer_id"])
    op.create_index("ix_tickets_status", "tickets", ["status"])

    op.create_table(
        "stage_transitions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("from_stage", sa.String(16), nullable=True),
        sa.Column("to_stage", sa.String(16), nullable=False),
        sa.Column("occurred_at", sa.DateTime(), nullable=False),
        sa.Column("event_id", sa.String(128), nullable=False),
        sa.Column("published", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id"),
    )
    op.create_index("ix_stage_transitions_customer_id", "stage_transitions", ["customer_id"])
    op.create_index("ix_stage_transitions_unpublished", "stage_transitions", ["published"])

    op.create_table(
        "processed_events",
        sa.Column("event_id", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
    )


def downgrade() -> None:
    for table in ("processed_events", "stage_transitions", "tickets", "deals", "customers"):
        op.drop_table(table)  # its indexes with it
