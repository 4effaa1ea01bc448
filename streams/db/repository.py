"""Loads the state a batch touches and writes it back in one transaction, with its dedup records.

A batch costs a handful of statements whatever its size: one SELECT per table by the list of keys it
touches, then bulk INSERTs for new rows and bulk UPDATEs by primary key of the columns that changed.
The repository is dialect-neutral; how each dialect runs those statements fastest lives in
:mod:`streams.db.sqlite` and :mod:`streams.db.postgresql`. All SQL is built by SQLAlchemy, values bound.
"""

from __future__ import annotations

import contextlib
import functools
import operator
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

from sqlalchemy import Delete, Engine, bindparam, delete, select, update
from sqlalchemy.orm import Session

from streams.db.models import Base, BatchPart, Churn, Customer, Deal, ProcessedEvent, StageTransition, Ticket
from streams.db.postgresql import PostgreSQLStatements
from streams.db.sqlite import SQLiteStatements
from streams.db.state_cache import StateCache
from streams.db.statements import FIELDS, chunks, table_of
from streams.domain.journey import CustomerState, DealState, Journeys, TicketState, Transition
from streams.domain.stages import Stage

State = TypeVar("State", CustomerState, DealState, TicketState)


@dataclass(slots=True)
class WorkingSet:
    journeys: Journeys
    # event id -> the digest of the content it was processed with (None: recorded before digests)
    seen_event_ids: dict[str, int | None]
    # the rows as the database holds them (:func:`_row`), by key: what the batch changes is written
    customer_rows: dict[str, tuple[Any, ...]]
    deal_rows: dict[str, tuple[Any, ...]]
    ticket_rows: dict[str, tuple[Any, ...]]


_VALUES = {cls: operator.attrgetter(*fields) for cls, fields in FIELDS.items()}
_STAGE = FIELDS[CustomerState].index("stage")
_EARLY_RESOLUTIONS = FIELDS[TicketState].index("early_resolutions")
_TRANSITION_COLUMNS = (
    "customer_id",
    "from_stage",
    "to_stage",
    "occurred_at",
    "event_id",
    "published",
    "previous_stage_entered_at",
    "seconds_in_previous_stage",
)
_PROCESSED_COLUMNS = ("event_id", "digest", "kept_until")
_CHURN_COLUMNS = ("event_id", "customer_id", "occurred_at", "reason")
_PART_COLUMNS = ("batch_id", "part", "committed_at", "result")


def _row(state: CustomerState | DealState | TicketState) -> tuple[Any, ...]:
    """A state's column values, in ``FIELDS`` order, as they are written (a JSON column's list of tuples
    is a list of lists to it). The domain replaces a customer's lists and dicts rather than changing
    them, so the row taken at loading keeps the values loaded; a ticket's held resolutions are changed
    in place, and copied here."""
    row: tuple[Any, ...] = _VALUES[type(state)](state)
    if isinstance(state, CustomerState):
        if state.stage is not None:
            values = list(row)
            values[_STAGE] = state.stage.value
            row = tuple(values)
    elif isinstance(state, TicketState) and state.early_resolutions:
        values = list(row)
        values[_EARLY_RESOLUTIONS] = [list(entry) for entry in state.early_resolutions]
        row = tuple(values)
    return row


def _changes(
    fields: tuple[str, ...], rows: Iterable[tuple[Any, ...]], before: dict[str, tuple[Any, ...]]
) -> dict[tuple[str, ...], list[tuple[Any, ...]]]:
    """Changed rows (the key first in each) by the columns that changed, for an UPDATE of just those:
    SQLite rewrites the index entry of every column an UPDATE names, changed or not (a random page
    dirtied each: an indexed column in the SET clause costs up to ~2.8 times a row's CPU in a large
    table), and converts and binds every value; a row that did not change is not written at all."""
    changes: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
    for row in rows:
        old = before[row[0]]
        if row != old:
            changed = tuple(name for name, new, was in zip(fields, row, old, strict=True) if new != was)
            changes.setdefault(changed, []).append(row)
    return changes


def _transition(row: StageTransition) -> Transition:
    return Transition(
        row.customer_id,
        Stage(row.from_stage) if row.from_stage else None,
        Stage(row.to_stage),
        row.occurred_at,
        row.event_id,
        row.previous_stage_entered_at,
        row.seconds_in_previous_stage,
    )


@functools.cache
def _forget_part() -> Delete:
    table = table_of(BatchPart)
    return delete(table).where(table.c.batch_id == bindparam("batch_id"))


class Statements(Protocol):
    """What differs between the dialects, each in a module of its own (:mod:`streams.db.sqlite`,
    :mod:`streams.db.postgresql`): how rows are selected by a list of keys and written in bulk."""

    def select_rows(
        self, session: Session, model: type[Base], columns: tuple[str, ...], key: str, values: Collection[str]
    ) -> Iterator[Sequence[Any]]: ...

    def insert(
        self, session: Session, model: type[Base], fields: tuple[str, ...], rows: Sequence[tuple[Any, ...]]
    ) -> None: ...

    def update(
        self,
        session: Session,
        model: type[Base],
        fields: tuple[str, ...],
        rows: Sequence[tuple[Any, ...]],
        columns: tuple[str, ...],
    ) -> None: ...

    def mark_published(self, session: Session, event_ids: Sequence[str]) -> None: ...

    def selecting_by_lists(self, session: Session) -> contextlib.AbstractContextManager[None]: ...


def statements_for(engine: Engine) -> Statements:
    if engine.dialect.name == "postgresql":
        return PostgreSQLStatements()
    return SQLiteStatements(engine.dialect)


class Repository:
    def __init__(self, engine: Engine, *, at_risk_threshold: float = 3.0, state_cache_customers: int = 0) -> None:
        """``state_cache_customers``: how many customers' committed states to keep for the next batches
        (:class:`StateCache`); 0 reads everything from the database, for when others write it too."""
        self.engine = engine
        self.at_risk_threshold = at_risk_threshold
        self._sql = statements_for(engine)
        self.cache = StateCache(state_cache_customers)
        self._saved: WorkingSet | None = None  # kept once its transaction commits

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Session]:
        """A batch's transaction. What it saved is kept once it commits; a failure forgets every kept
        state, since the domain changed them in place."""
        self._saved = None
        try:
            with Session(self.engine) as session, session.begin():
                yield session
        except BaseException:
            self._saved = None
            self.cache.forget()
            raise
        saved, self._saved = self._saved, None
        if saved is not None:
            journeys = saved.journeys
            self.cache.remember(
                (journeys.customers[key] for key in saved.customer_rows.keys() | journeys.changed_customers),
                (journeys.deals[key] for key in saved.deal_rows.keys() | journeys.changed_deals),
                (journeys.tickets[key] for key in saved.ticket_rows.keys() | journeys.changed_tickets),
            )

    def load(
        self,
        session: Session,
        *,
        event_ids: Collection[str],
        customer_ids: Collection[str],
        deal_ids: Collection[str],
        ticket_ids: Collection[str],
        winning_customer_ids: Collection[str] = (),
    ) -> WorkingSet:
        """``winning_customer_ids``: customers with a deal.won in the batch, whose first won deal is loaded
        too (a win can take its place, and its kind with it)."""
        customers, missed_customers = self.cache.customers(customer_ids)
        tickets, missed_tickets = self.cache.tickets(ticket_ids)
        with self._sql.selecting_by_lists(session):
            processed = self._select_rows(session, ProcessedEvent, ("event_id", "digest"), "event_id", event_ids)
            seen: dict[str, int | None] = dict(processed)  # type: ignore[arg-type]
            for state in self._select_states(session, Customer, CustomerState, "customer_id", missed_customers):
                state.stage = Stage(state.stage) if state.stage else None
                state.recent_csat = [(str(a), str(b), int(c)) for a, b, c in state.recent_csat or []]
                state.commercial_facts = [(str(a), str(b), str(c)) for a, b, c in state.commercial_facts or []]
                state.won_revenue = {str(k): float(v) for k, v in (state.won_revenue or {}).items()}
                customers[state.customer_id] = state
            firsts = {
                first
                for key in winning_customer_ids
                if (first := customers[key].first_won_deal_id if key in customers else None) is not None
            }
            deals, missed_deals = self.cache.deals({*deal_ids, *firsts})
            # only the deals the batch names: the stage rule reads the customer's counts of deals by status
            for deal in self._select_states(session, Deal, DealState, "deal_id", missed_deals):
                deals[deal.deal_id] = deal
            for ticket in self._select_states(session, Ticket, TicketState, "ticket_id", missed_tickets):
                ticket.early_resolutions = [(str(a), float(b), int(c)) for a, b, c in ticket.early_resolutions or []]
                tickets[ticket.ticket_id] = ticket
        journeys = Journeys(customers, deals, tickets, at_risk_threshold=self.at_risk_threshold)
        return WorkingSet(
            journeys,
            seen,
            {key: _row(state) for key, state in customers.items()},
            {key: _row(state) for key, state in deals.items()},
            {key: _row(state) for key, state in tickets.items()},
        )

    def save(
        self,
        session: Session,
        working: WorkingSet,
        *,
        processed: Sequence[tuple[str, int, datetime | None]],
        transitions: Sequence[Transition],
    ) -> None:
        """``processed``: the dedup records, (event id, content digest, kept until)."""
        journeys = working.journeys
        self._saved = working
        self._upsert(session, Customer, journeys.customers, journeys.changed_customers, working.customer_rows)
        self._upsert(session, Deal, journeys.deals, journeys.changed_deals, working.deal_rows)
        self._upsert(session, Ticket, journeys.tickets, journeys.changed_tickets, working.ticket_rows)
        self._insert(session, ProcessedEvent, _PROCESSED_COLUMNS, processed)
        self._insert(session, Churn, _CHURN_COLUMNS, journeys.churns)
        self._insert(
            session,
            StageTransition,
            _TRANSITION_COLUMNS,
            [
                (
                    t.customer_id,
                    t.from_stage.value if t.from_stage else None,
                    t.to_stage.value,
                    t.occurred_at,
                    t.event_id,
                    False,
                    t.previous_stage_entered_at,
                    t.seconds_in_previous_stage,
                )
                for t in transitions
            ],
        )

    def _upsert(
        self,
        session: Session,
        model: type[Base],
        states: dict[str, CustomerState] | dict[str, DealState] | dict[str, TicketState],
        changed: set[str],
        before: dict[str, tuple[Any, ...]],
    ) -> None:
        """New rows inserted whole; the others' changed columns updated, by primary key."""
        if not changed:
            return
        fields = FIELDS[type(states[next(iter(changed))])]
        self._insert(session, model, fields, [_row(states[key]) for key in changed if key not in before])
        updated = (_row(states[key]) for key in changed if key in before)
        for columns, rows in _changes(fields, updated, before).items():
            statement_columns = (fields[0], *columns)  # the key first, as in every row
            self._sql.update(session, model, fields, rows, statement_columns)

    def _insert(
        self, session: Session, model: type[Base], fields: tuple[str, ...], rows: Sequence[tuple[Any, ...]]
    ) -> None:
        if rows:
            self._sql.insert(session, model, fields, rows)

    def _select_rows(
        self, session: Session, model: type[Base], columns: tuple[str, ...], key: str, values: Collection[str]
    ) -> Iterator[Sequence[Any]]:
        """Rows of ``columns`` whose ``key`` is one of ``values``."""
        return self._sql.select_rows(session, model, columns, key, values) if values else iter(())

    def _select_states(
        self, session: Session, model: type[Base], cls: type[State], column: str, values: Collection[str]
    ) -> Iterator[State]:
        """Core SELECT straight into the domain dataclasses: ORM identity tracking is not needed here."""
        return (cls(*row) for row in self._select_rows(session, model, FIELDS[cls], column, values))

    # --- a batch's committed parts ------------------------------------------------------------------
    def save_part(self, session: Session, batch_id: str, part: int, committed_at: datetime, result: bytes) -> None:
        self._insert(session, BatchPart, _PART_COLUMNS, [(batch_id, part, committed_at, result)])

    def saved_parts(self, batch_id: str) -> list[bytes]:
        """The committed parts of ``batch_id`` whose results the worker may not have (in part order)."""
        with Session(self.engine) as session:
            return list(
                session.scalars(select(BatchPart.result).where(BatchPart.batch_id == batch_id).order_by(BatchPart.part))
            )

    def forget_parts(self, session: Session, batch_ids: Collection[str]) -> None:
        """The worker has these batches' results: their parts are needed no more."""
        if batch_ids:
            session.connection().execute(_forget_part(), [{"batch_id": batch_id} for batch_id in batch_ids])

    # --- retention -----------------------------------------------------------------------------------
    def prune(self, now: datetime, *, parts_before: datetime, limit: int = 1000) -> int:
        """Deletes up to ``limit`` dedup records whose ``kept_until`` has passed, and the parts of batches
        committed before ``parts_before`` (a worker that died before it got them; ``lifecycle`` topic and
        figures: docs/reliability.md), in one short transaction. Returns the dedup records deleted."""
        with Session(self.engine) as session, session.begin():
            expired = (
                select(ProcessedEvent.event_id)
                .where(ProcessedEvent.kept_until < now)
                .order_by(ProcessedEvent.kept_until)
                .limit(limit)
            )
            deleted = session.execute(delete(ProcessedEvent).where(ProcessedEvent.event_id.in_(expired)))
            session.execute(delete(BatchPart).where(BatchPart.committed_at < parts_before))
            return int(deleted.rowcount or 0)  # type: ignore[attr-defined]

    # --- outbox --------------------------------------------------------------------------------
    def transitions_of(self, event_ids: Collection[str]) -> list[Transition]:
        """The transitions that these events made, in the order they were recorded."""
        if not event_ids:
            return []
        with Session(self.engine) as session:
            rows = [
                row
                for chunk in chunks(event_ids)
                for row in session.scalars(select(StageTransition).where(StageTransition.event_id.in_(chunk)))
            ]
        return [_transition(row) for row in sorted(rows, key=lambda row: row.id)]

    def unpublished_transitions(self, limit: int = 10000, after: int = 0) -> list[tuple[int, Transition]]:
        """Up to ``limit`` transitions not yet published, by id, from ``after`` on (a page of the outbox)."""
        with Session(self.engine) as session:
            rows = session.scalars(
                select(StageTransition)
                .where(StageTransition.published.is_(False), StageTransition.id > after)
                .order_by(StageTransition.id)
                .limit(limit)
            )
            return [(row.id, _transition(row)) for row in rows]

    def mark_all_published(self) -> None:
        """Every transition recorded as published: after a rebuild, whose transitions the topic has."""
        with self.engine.begin() as connection:
            connection.execute(update(StageTransition).values(published=True))

    def mark_published(self, session: Session, event_ids: Sequence[str]) -> None:
        if not event_ids:
            return
        with self._sql.selecting_by_lists(session):
            self._sql.mark_published(session, event_ids)
