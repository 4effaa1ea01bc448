"""Time in stage: each recorded transition says when the stage it left was entered and how long the
customer was in it. Transitions recorded before this revision have neither (NULL).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("stage_transitions") as table:
        table.add_column(sa.Column("previous_stage_entered_at", sa.DateTime(), nullable=True))
        table.add_column(sa.Column("seconds_in_previous_stage", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("stage_transitions") as table:
        table.drop_column("seconds_in_previous_stage")
        table.drop_column("previous_stage_entered_at")
