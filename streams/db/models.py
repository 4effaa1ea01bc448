"""Read-model tables. Times are naive UTC on every dialect (SQLite has no zone-aware type)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, Index, Integer, LargeBinary, Numeric, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Customer(Base):
    __tablename__ = "customers"

    customer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    stage: Mapped[str | None] = mapped_column(String(16), index=True)
    first_seen_at: Mapped[datetime | None] = mapped_column(DateTime)
    stage_changed_at: Mapped[datetime | None] = mapped_column(DateTime)
    converted_at: Mapped[datetime | None] = mapped_column(DateTime)
    first_lead_at: Mapped[datetime | None] = mapped_column(DateTime)
    qualification: Mapped[str | None] = mapped_column(String(16))
    qualification_at: Mapped[datetime | None] = mapped_column(DateTime)
    qualification_event_id: Mapped[str | None] = mapped_column(String(128))
    recent_csat: Mapped[list[list[object]]] = mapped_column(JSON, default=list)
    won_deals: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    open_deals: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    lost_deals: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    first_won_deal_id: Mapped[str | None] = mapped_column(String(128))
    # the latest commercial facts in time order, [occurred_at ISO, event_id, "won" | "churned"]
    # (streams.domain.journey), and what the ones dropped from it leave
    commercial_facts: Mapped[list[list[object]] | None] = mapped_column(JSON)
    earlier_win_backs: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    earlier_fact: Mapped[str | None] = mapped_column(String(8))
    churned_at: Mapped[datetime | None] = mapped_column(DateTime)
    churn_event_id: Mapped[str | None] = mapped_column(String(128))
    churns: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    churn_band: Mapped[str | None] = mapped_column(String(8))
    csat_band: Mapped[str] = mapped_column(String(8), default="none", server_default="none")
    referred_by: Mapped[str | None] = mapped_column(String(64), index=True)
    referral_at: Mapped[datetime | None] = mapped_column(DateTime)
    referral_event_id: Mapped[str | None] = mapped_column(String(128))
    won_revenue: Mapped[dict[str, float] | None] = mapped_column(JSON)
    nps_score: Mapped[int | None] = mapped_column(Integer)
    nps_at: Mapped[datetime | None] = mapped_column(DateTime)
    nps_event_id: Mapped[str | None] = mapped_column(String(128))


class Deal(Base):
    __tablename__ = "deals"

    deal_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    pipeline_stage: Mapped[str | None] = mapped_column(String(16))
    pipeline_stage_at: Mapped[datetime | None] = mapped_column(DateTime)
    amount: Mapped[float | None] = mapped_column(Numeric(20, 4, asdecimal=False))
    currency: Mapped[str | None] = mapped_column(String(3))
    owner: Mapped[str | None] = mapped_column(String(128), index=True)
    opened_at: Mapped[datetime | None] = mapped_column(DateTime)
    won_at: Mapped[datetime | None] = mapped_column(DateTime)
    lost_at: Mapped[datetime | None] = mapped_column(DateTime)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime)
    pipeline_stage_event_id: Mapped[str | None] = mapped_column(String(128))
    kind: Mapped[str | None] = mapped_column(String(16))  # as declared; NULL: by the default rule (docs/metrics.md)


class Ticket(Base):
    __tablename__ = "tickets"

    ticket_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    status_at: Mapped[datetime | None] = mapped_column(DateTime)
    status_event_id: Mapped[str | None] = mapped_column(String(128))
    channel: Mapped[str | None] = mapped_column(String(16))
    priority: Mapped[str | None] = mapped_column(String(16))
    opened_at: Mapped[datetime | None] = mapped_column(DateTime)
    first_response_at: Mapped[datetime | None] = mapped_column(DateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime)
    handling_seconds: Mapped[float | None] = mapped_column(Float)
    contacts: Mapped[int | None] = mapped_column(Integer)
    csat_score: Mapped[int | None] = mapped_column(Integer)
    csat_at: Mapped[datetime | None] = mapped_column(DateTime)
    resolved_event_id: Mapped[str | None] = mapped_column(String(128))
    resolutions: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    first_contact_resolutions: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    csat_event_id: Mapped[str | None] = mapped_column(String(128))
    # resolutions and reopenings that came before ticket.opened, for the metrics (streams.domain.journey)
    early_resolutions: Mapped[list[list[object]] | None] = mapped_column(JSON)
    early_reopens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class StageTransition(Base):
    __tablename__ = "stage_transitions"
    __table_args__ = (Index("ix_stage_transitions_unpublished", "published"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(String(64), index=True)
    from_stage: Mapped[str | None] = mapped_column(String(16))
    to_stage: Mapped[str] = mapped_column(String(16))
    occurred_at: Mapped[datetime] = mapped_column(DateTime)
    event_id: Mapped[str] = mapped_column(String(128), unique=True)
    # outbox flag: set once the transition is on the `lifecycle` topic
    published: Mapped[bool] = mapped_column(Boolean, default=False)
    previous_stage_entered_at: Mapped[datetime | None] = mapped_column(DateTime)
    seconds_in_previous_stage: Mapped[float | None] = mapped_column(Float)


class Churn(Base):
    """Every customer.churned event: the periods' churn figures count them."""

    __tablename__ = "churns"

    event_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(64), index=True)
    occurred_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    reason: Mapped[str | None] = mapped_column(String(256))


class ProcessedEvent(Base):
    """The idempotency record: an event id here has had its effect, exactly once. ``digest``: of the
    event's content, so that an id reused for other content is told from a redelivery (NULL: recorded
    before digests were); ``kept_until``: when the record may be pruned (NULL: never)."""

    __tablename__ = "processed_events"
    __table_args__ = (Index("ix_processed_events_kept_until", "kept_until"),)

    event_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    digest: Mapped[int | None] = mapped_column(BigInteger)
    kept_until: Mapped[datetime | None] = mapped_column(DateTime)


class BatchPart(Base):
    """What a committed part of a batch told the worker (its figures, transitions), kept until the worker
    has it: if the reply is lost (the pipeline process dies after the commit), the retried batch gets it
    from here, where its events are now duplicates."""

    __tablename__ = "batch_parts"

    batch_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    part: Mapped[int] = mapped_column(Integer, primary_key=True)
    committed_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    result: Mapped[bytes] = mapped_column(LargeBinary)
