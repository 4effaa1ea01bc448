"""Loads the state a batch touches and writes it back in one transaction, with its dedup records.

A batch costs a handful of statements whatever its size: one SELECT per table by the list of keys it
touches, then bulk INSERTs for new rows and bulk UPDATEs by primary key of the columns that changed.
The repository is dialect-neutral; how each dialect runs those statements fastest lives in
:mod:`streams.db.sqlite` and :mod:`streams.db.postgresql`. All SQL is built by SQLAlchemy, values bound.
"""

from __future__ import annotations

import contextlib
import operator
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from streams.db.models import Base, Customer, Deal, ProcessedEvent, StageTransition, Ticket
from streams.db.postgresql import PostgreSQLStatements
from streams.db.sqlite import SQLiteStatements
from streams.db.state_cache import StateCache
from streams.db.statements import FIELDS
from streams.domain.journey import CustomerState, DealState, Journeys, TicketState, Transition
from streams.domain.stages import Stage

State = TypeVar("State", CustomerState, DealState, TicketState)


@dataclass(slots=True)
class WorkingSet:
    journeys: Journeys
    seen_event_ids: set[str]
    # the rows as the database holds them (:func:`_row`), by key: what the batch changes is written
    customer_rows: dict[str, tuple[Any, ...]]
    deal_rows: dict[str, tuple[Any, ...]]
    ticket_rows: dict[str, tuple[Any, ...]]


_VALUES = {cls: operator.attrgetter(*fields) for cls, fields in FIELDS.items()}
_STAGE, _RECENT_CSAT = (FIELDS[CustomerState].index(name) for name in ("stage", "recent_csat"))
_TRANSITION_COLUMNS = ("customer_id", "from_stage", "to_stage", "occurred_at", "event_id", "published")


def _row(state: CustomerState | DealState | TicketState) -> tuple[Any, ...]:
    """A state's column values, in ``FIELDS`` order, as the database holds them."""
    row: tuple[Any, ...] = _VALUES[type(state)](state)
    if isinstance(state, CustomerState):
        values = list(row)
        values[_STAGE] = state.stage.value if state.stage else None
        values[_RECENT_CSAT] = [list(entry) for entry in state.recent_csat]
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
                journeys.deals_by_customer,
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
    ) -> WorkingSet:
        customers, deals, missed_customers = self.cache.customers(customer_ids)
        tickets, missed_tickets = self.cache.tickets(ticket_ids)
        with self._sql.selecting_by_lists(session):
            seen: set[str] = set()
            processed = self._select_rows(session, ProcessedEvent, ("event_id",), "event_id", event_ids)
            seen.update(row[0] for row in processed)
            for state in self._select_states(session, Customer, CustomerState, "customer_id", missed_customers):
                state.stage = Stage(state.stage) if state.stage else None
                state.recent_csat = [(str(a), str(b), int(c)) for a, b, c in state.recent_csat or []]
                customers[state.customer_id] = state
            # every deal of the batch's customers: the stage rule needs them all
            for deal in self._select_states(session, Deal, DealState, "customer_id", missed_customers):
                deals[deal.deal_id] = deal
            for deal in self._select_states(session, Deal, DealState, "deal_id", set(deal_ids) - deals.keys()):
                deals[deal.deal_id] = deal
            for ticket in self._select_states(session, Ticket, TicketState, "ticket_id", missed_tickets):
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
        processed_event_ids: Iterable[str],
        transitions: Sequence[Transition],
    ) -> None:
        journeys = working.journeys
        self._saved = working
        self._upsert(session, Customer, journeys.customers, journeys.changed_customers, working.customer_rows)
        self._upsert(session, Deal, journeys.deals, journeys.changed_deals, working.deal_rows)
        self._upsert(session, Ticket, journeys.tickets, journeys.changed_tickets, working.ticket_rows)
        self._insert(session, ProcessedEvent, ("event_id",), [(event_id,) for event_id in processed_event_ids])
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

    # --- outbox --------------------------------------------------------------------------------
    def unpublished_transitions(self, limit: int = 10000) -> list[tuple[int, Transition]]:
        with Session(self.engine) as session:
            rows = session.scalars(
                select(StageTransition)
                .where(StageTransition.published.is_(False))
                .order_by(StageTransition.id)
                .limit(limit)
            )
            return [
                (
                    row.id,
                    Transition(
                        row.customer_id,
                        Stage(row.from_stage) if row.from_stage else None,
                        Stage(row.to_stage),
                        row.occurred_at,
                        row.event_id,
                    ),
                )
                for row in rows
            ]

    def mark_all_published(self) -> None:
        """Every transition recorded as published: after a rebuild, whose transitions the topic has."""
        with self.engine.begin() as connection:
            connection.execute(update(StageTransition).values(published=True))

    def mark_published(self, session: Session, event_ids: Sequence[str]) -> None:
        if not event_ids:
            return
        with self._sql.selecting_by_lists(session):
            self._sql.mark_published(session, event_ids)
