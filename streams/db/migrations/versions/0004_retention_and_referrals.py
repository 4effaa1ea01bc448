"""Retention and word of mouth: a customer's commercial facts (wins and churns), churns, its CSAT band,
referrer, won revenue and latest NPS answer; a deal's declared kind; the churns table.

Rows written before this revision get what can be derived from them: a customer's first won deal, its
won revenue by currency and its latest HELD_FACTS wins as commercial facts (event id "": they order
before any other fact at the same instant), from its deals; its CSAT band from its recent ratings with
the default at-risk threshold (3.0; a worker with another one corrects it at the customer's next rating).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# as streams.domain at this revision: a migration keeps the rule it ran with
_HELD_FACTS = 100
_AT_RISK = 3.0
_CUSTOMER_COLUMNS: tuple[tuple[str, Any, str | None], ...] = (
    ("first_won_deal_id", sa.String(128), None),
    ("commercial_facts", sa.JSON(), None),
    ("earlier_win_backs", sa.Integer(), "0"),
    ("earlier_fact", sa.String(8), None),
    ("churned_at", sa.DateTime(), None),
    ("churn_event_id", sa.String(128), None),
    ("churns", sa.Integer(), "0"),
    ("churn_band", sa.String(8), None),
    ("csat_band", sa.String(8), "none"),
    ("referred_by", sa.String(64), None),
    ("referral_at", sa.DateTime(), None),
    ("referral_event_id", sa.String(128), None),
    ("won_revenue", sa.JSON(), None),
    ("nps_score", sa.Integer(), None),
    ("nps_at", sa.DateTime(), None),
    ("nps_event_id", sa.String(128), None),
)


def upgrade() -> None:
    with op.batch_alter_table("customers") as table:
        for name, kind, default in _CUSTOMER_COLUMNS:
            table.add_column(
                sa.Column(name, kind, nullable=default is None, server_default=default),
            )
    op.create_index("ix_customers_referred_by", "customers", ["referred_by"])
    with op.batch_alter_table("deals") as table:
        table.add_column(sa.Column("kind", sa.String(16), nullable=True))
    op.create_table(
        "churns",
        sa.Column("event_id", sa.String(128), primary_key=True),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("occurred_at", sa.DateTime(), nullable=False),
        sa.Column("reason", sa.String(256), nullable=True),
    )
    op.create_index("ix_churns_customer_id", "churns", ["customer_id"])
    op.create_index("ix_churns_occurred_at", "churns", ["occurred_at"])
    _derive()


def _derive() -> None:
    bind = op.get_bind()
    customers = sa.table(
        "customers",
        sa.column("customer_id"),
        sa.column("recent_csat", sa.JSON()),
        sa.column("first_won_deal_id"),
        sa.column("commercial_facts", sa.JSON()),
        sa.column("csat_band"),
        sa.column("won_revenue", sa.JSON()),
    )
    deals = sa.table(
        "deals",
        sa.column("deal_id"),
        sa.column("customer_id"),
        sa.column("status"),
        sa.column("won_at", sa.DateTime()),
        sa.column("amount"),
        sa.column("currency"),
    )
    wins: dict[str, list[tuple[Any, str, float, str]]] = defaultdict(list)
    won = sa.select(deals.c.customer_id, deals.c.won_at, deals.c.deal_id, deals.c.amount, deals.c.currency).where(
        deals.c.status == "won", deals.c.won_at.is_not(None)
    )
    for customer_id, won_at, deal_id, amount, currency in bind.execute(won):
        wins[customer_id].append((won_at, deal_id, float(amount or 0), currency))
    for customer_id, recent in bind.execute(sa.select(customers.c.customer_id, customers.c.recent_csat)).all():
        # the score is an entry's last item in every format a revision has written
        values: dict[str, Any] = {"csat_band": _band([int(entry[-1]) for entry in recent or []])}
        if customer_wins := sorted(wins.get(customer_id, [])):
            revenue: dict[str, float] = defaultdict(float)
            for _, _, amount, currency in customer_wins:
                revenue[currency] += amount
            values["first_won_deal_id"] = customer_wins[0][1]
            values["won_revenue"] = dict(revenue)
            values["commercial_facts"] = [
                [won_at.isoformat(timespec="microseconds"), "", "won"] for won_at, *_ in customer_wins[-_HELD_FACTS:]
            ]
        else:
            values["commercial_facts"], values["won_revenue"] = [], {}
        bind.execute(customers.update().where(customers.c.customer_id == customer_id).values(values))


def _band(scores: list[int]) -> str:
    if not scores:
        return "none"
    average = sum(scores) / len(scores)
    return "low" if average < _AT_RISK else "mid" if average < 4 else "high"


def downgrade() -> None:
    op.drop_table("churns")
    with op.batch_alter_table("deals") as table:
        table.drop_column("kind")
    op.drop_index("ix_customers_referred_by", "customers")
    with op.batch_alter_table("customers") as table:
        for name, _, _ in reversed(_CUSTOMER_COLUMNS):
            table.drop_column(name)
