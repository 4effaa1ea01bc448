"""Loads the state a batch touches and writes it back in one transaction, with its dedup records.

A batch costs a handful of statements whatever its size: one SELECT per table with ``IN (...)``, then
bulk INSERTs for new rows and bulk UPDATEs by primary key of the columns that changed. All SQL goes
through SQLAlchemy with bound parameters.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import operator
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar
from typing import cast as typed_as

from sqlalchemy import (
    ARRAY,
    JSON,
    Engine,
    Insert,
    Select,
    Table,
    Text,
    Update,
    any_,
    bindparam,
    cast,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from streams.db.engine import json_text
from streams.db.models import Base, Customer, Deal, ProcessedEvent, StageTransition, Ticket
from streams.db.state_cache import StateCache
from streams.domain.journey import CustomerState, DealState, Journeys, TicketState, Transition
from streams.domain.stages import Stage

# SQLite allows 32766 bound parameters; PostgreSQL 65535. Stay well below both.
_IN_CHUNK = 5000

State = TypeVar("State", CustomerState, DealState, TicketState)


@dataclass(slots=True)
class WorkingSet:
    journeys: Journeys
    seen_event_ids: set[str]
    # the rows as the database holds them (:func:`_row`), by key: what the batch changes is written
    customer_rows: dict[str, tuple[Any, ...]]
    deal_rows: dict[str, tuple[Any, ...]]
    ticket_rows: dict[str, tuple[Any, ...]]


def _chunks(values: Collection[str]) -> Iterator[list[str]]:
    ordered = list(values)
    for start in range(0, len(ordered), _IN_CHUNK):
        yield ordered[start : start + _IN_CHUNK]


def _table(model: type[Base]) -> Table:
    return typed_as(Table, model.__table__)


# dataclasses.fields() is slow enough to show in a profile: look the names up once
_FIELDS: dict[type[Any], tuple[str, ...]] = {
    cls: tuple(f.name for f in dataclasses.fields(cls)) for cls in (CustomerState, DealState, TicketState)
}
_KEYS: dict[type[Base], str] = {Customer: "customer_id", Deal: "deal_id", Ticket: "ticket_id"}
_VALUES = {cls: operator.attrgetter(*fields) for cls, fields in _FIELDS.items()}
_STAGE, _RECENT_CSAT = (_FIELDS[CustomerState].index(name) for name in ("stage", "recent_csat"))
_TRANSITION_COLUMNS = ("customer_id", "from_stage", "to_stage", "occurred_at", "event_id", "published")


def _row(state: CustomerState | DealState | TicketState) -> tuple[Any, ...]:
    """A state's column values, in ``_FIELDS`` order, as the database holds them."""
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


def _among_values(column: ColumnElement[Any], as_array: bool) -> ColumnElement[bool]:
    """``column`` is one of the bound ``values``. SQLite: ``IN`` with one expanding parameter, so no
    statement is rebuilt and no value is coerced one by one per batch. PostgreSQL (``as_array``):
    ``= ANY(array)``, one parameter however many values, where an ``IN`` list has the server parse a
    statement of thousands of placeholders per batch."""
    if as_array:
        return column == any_(bindparam("values", type_=ARRAY(column.type)))
    return column.in_(bindparam("values", expanding=True))


@functools.cache
def _select_in(model: type[Base], columns: tuple[str, ...], key: str, as_array: bool) -> Select[Any]:
    table = _table(model)
    return select(*(table.c[name] for name in columns)).where(_among_values(table.c[key], as_array))


@functools.cache
def _mark_published(as_array: bool) -> Update:
    table = _table(StageTransition)
    return update(table).where(_among_values(table.c.event_id, as_array)).values(published=True)


@functools.cache
def _update_by_key(model: type[Base], columns: tuple[str, ...]) -> Update:
    """Core executemany by primary key; bound names differ from the columns, as SQLAlchemy requires."""
    table, key = _table(model), _KEYS[model]
    return (
        update(table)
        .where(table.c[key] == bindparam(f"b_{key}"))
        .values({name: bindparam(f"b_{name}") for name in columns if name != key})
    )


def _unnested(table: Table, name: str) -> Any:
    column = table.c[name]
    if isinstance(column.type, JSON):  # JSON travels as text: no array type adapts JSON documents
        return cast(func.unnest(bindparam(f"a_{name}", type_=ARRAY(Text))), column.type).label(name)
    return func.unnest(bindparam(f"a_{name}", type_=ARRAY(column.type))).label(name)


@functools.cache
def _rows_from_arrays(model: type[Base], columns: tuple[str, ...]) -> Select[Any]:
    """PostgreSQL: a batch's rows as one array per column, zipped back into rows by ``unnest`` in the
    server. One statement per table and batch, planned and executed once, where an executemany runs
    one statement per row."""
    table = _table(model)
    return select(*(_unnested(table, name) for name in columns))


@functools.cache
def _insert_from_arrays(model: type[Base], columns: tuple[str, ...]) -> Insert:
    return insert(_table(model)).from_select(list(columns), _rows_from_arrays(model, columns))


@functools.cache
def _update_from_arrays(model: type[Base], columns: tuple[str, ...]) -> Update:
    table, key = _table(model), _KEYS[model]
    rows = _rows_from_arrays(model, columns).subquery("batch")
    return (
        update(table).where(table.c[key] == rows.c[key]).values({name: rows.c[name] for name in columns if name != key})
    )


@dataclass(frozen=True, slots=True)
class _DriverExecutemany:
    """SQLite: a statement compiled once and run by the driver's ``executemany`` on plain tuples, with
    the same type conversions as SQLAlchemy's, looked up once. SQLAlchemy's own executemany rebuilds
    every row's parameters through the compiled statement: a third of a small batch's time."""

    sql: str
    values: Callable[[tuple[Any, ...]], tuple[Any, ...]]  # a row's values in placeholder order
    # (placeholder index, its type's conversion), for the placeholders that have one
    conversions: tuple[tuple[int, Callable[[Any], Any]], ...]

    @classmethod
    def compile(
        cls, statement: Insert | Update, dialect: Dialect, fields: tuple[str, ...], prefix: str = ""
    ) -> _DriverExecutemany:
        """``fields``: the names of a row's values, in order (a row may have more than the statement)."""
        compiled = statement.compile(dialect=dialect)
        positions = [fields.index(name.removeprefix(prefix)) for name in compiled.positiontup or ()]
        conversions = []
        for index, name in enumerate(compiled.positiontup or ()):
            type_ = compiled.binds[name].type.dialect_impl(dialect)
            processor = type_.bind_processor(dialect)
            if processor is not None:
                slow = isinstance(type_, sqlite.DATETIME)
                conversions.append((index, _sqlite_datetime(processor) if slow else processor))
        getter = operator.itemgetter(*positions)
        values = getter if len(positions) > 1 else lambda row: (getter(row),)
        return cls(str(compiled), values, tuple(conversions))

    def run(self, session: Session, rows: Sequence[tuple[Any, ...]]) -> None:
        values, conversions = self.values, self.conversions
        parameters: list[Any] = [values(row) for row in rows]
        if conversions:
            for position, row_values in enumerate(parameters):
                converted = list(row_values)
                for index, convert in conversions:
                    converted[index] = convert(converted[index])
                parameters[position] = tuple(converted)
        session.connection().exec_driver_sql(self.sql, parameters)  # SQL compiled by SQLAlchemy, values bound


_REMEMBERED_TIMES = 20_000  # ~3 MiB


def _sqlite_datetime(fallback: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """SQLAlchemy's SQLite DATETIME text ('2026-01-02 03:04:05.000006') for a naive datetime, by
    ``isoformat``: its own ``%`` formatting of seven fields costs 6 % of a batch. The texts are
    remembered: a row's unchanged times go back with every change to the row, and even ``isoformat`` (C
    ``printf``) is a visible share of the instructions per event. Anything else (None, an aware datetime, a
    date) takes SQLAlchemy's path."""

    texts: dict[datetime, str] = {}

    def convert(value: Any) -> Any:
        if value.__class__ is datetime and value.tzinfo is None:
            text = texts.get(value)
            if text is None:
                if len(texts) >= _REMEMBERED_TIMES:
                    texts.clear()
                text = texts[value] = value.isoformat(" ", "microseconds")
            return text
        return fallback(value)

    return convert


@functools.cache
def _driver_insert(
    model: type[Base], columns: tuple[str, ...], fields: tuple[str, ...], dialect: Dialect
) -> _DriverExecutemany:
    statement = insert(_table(model)).values({name: bindparam(name) for name in columns})
    return _DriverExecutemany.compile(statement, dialect, fields)


@functools.cache
def _driver_update(
    model: type[Base], columns: tuple[str, ...], fields: tuple[str, ...], dialect: Dialect
) -> _DriverExecutemany:
    return _DriverExecutemany.compile(_update_by_key(model, columns), dialect, fields, prefix="b_")


def _as_arrays(
    model: type[Base], columns: tuple[str, ...], fields: tuple[str, ...], rows: Sequence[tuple[Any, ...]]
) -> dict[str, list[Any]]:
    table = _table(model)
    arrays = {}
    for name in columns:
        index = fields.index(name)
        values = [row[index] for row in rows]
        if isinstance(table.c[name].type, JSON):
            values = [json_text(value) for value in values]
        arrays[f"a_{name}"] = values
    return arrays


@dataclass(frozen=True, slots=True)
class _DriverSelect:
    """SQLite: a SELECT by a list of keys, compiled once, run on the driver's cursor, its rows converted
    by the columns' own SQLAlchemy result processors, looked up once. SQLAlchemy's execution and result
    objects (a ``fetchone`` and a ``Row`` per row, the ``IN`` list rendered through the compiled
    statement) cost 5 % of the pipeline process's instructions per event."""

    head: str  # the SQL before the list of keys
    tail: str
    conversions: tuple[tuple[int, Callable[[Any], Any]], ...]  # (column index, its conversion)

    @classmethod
    def compile(cls, statement: Select[Any], dialect: Dialect) -> _DriverSelect:
        # the expanding parameter compiles to a token that SQLAlchemy renders per run: so do we
        head, token, tail = str(statement.compile(dialect=dialect)).partition("__[POSTCOMPILE_values]")
        if not token:
            raise ValueError("the statement has no expanding 'values' parameter")
        conversions = []
        for index, column in enumerate(statement.selected_columns):
            processor = column.type.dialect_impl(dialect).result_processor(dialect, None)
            if processor is not None:
                conversions.append((index, processor))
        return cls(head, tail, tuple(conversions))

    def rows(self, session: Session, values: Collection[str]) -> Iterator[Sequence[Any]]:
        for chunk in _chunks(values):
            sql = self.head + ",".join("?" * len(chunk)) + self.tail
            fetched = session.connection().exec_driver_sql(sql, tuple(chunk)).cursor.fetchall()
            conversions = self.conversions
            for row in fetched:
                if conversions:
                    row = list(row)
                    for index, convert in conversions:
                        row[index] = convert(row[index])
                yield row


@functools.cache
def _driver_select(model: type[Base], columns: tuple[str, ...], key: str, dialect: Dialect) -> _DriverSelect:
    return _DriverSelect.compile(_select_in(model, columns, key, False), dialect)


def _select_rows(
    session: Session, model: type[Base], columns: tuple[str, ...], key: str, values: Collection[str], as_array: bool
) -> Iterator[Sequence[Any]]:
    """Rows of ``columns`` whose ``key`` is one of ``values``: PostgreSQL through SQLAlchemy (one array
    parameter), SQLite on the driver's cursor (:class:`_DriverSelect`)."""
    if not values:
        return iter(())
    if as_array:
        statement = _select_in(model, columns, key, as_array)
        return (row for chunk in _chunks(values) for row in session.execute(statement, {"values": chunk}))
    return _driver_select(model, columns, key, session.get_bind().dialect).rows(session, values)


def _select_states(
    session: Session, model: type[Base], cls: type[State], column: str, values: Collection[str], as_array: bool
) -> Iterator[State]:
    """Core SELECT straight into the domain dataclasses: ORM identity tracking is not needed here."""
    return (cls(*row) for row in _select_rows(session, model, _FIELDS[cls], column, values, as_array))


_CUSTOM_PLANS = select(func.set_config("plan_cache_mode", "force_custom_plan", True))  # = SET LOCAL
_AUTO_PLANS = select(func.set_config("plan_cache_mode", "auto", True))


class Repository:
    def __init__(self, engine: Engine, *, at_risk_threshold: float = 3.0, state_cache_customers: int = 0) -> None:
        """``state_cache_customers``: how many customers' committed states to keep for the next batches
        (:class:`StateCache`); 0 reads everything from the database, for when others write it too."""
        self.engine = engine
        self.at_risk_threshold = at_risk_threshold
        self._postgresql = engine.dialect.name == "postgresql"
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

    @contextlib.contextmanager
    def _planned_per_run(self, session: Session) -> Iterator[None]:
        """Statements selecting by a list of values (:func:`_among_values`), on PostgreSQL: psycopg
        prepares a statement run 5 times, and the server may then keep a generic plan made while the table
        was small, a sequential scan that gets slower with every stored event, to hundreds of milliseconds
        a batch in processed_events. The writes by primary key keep their generic plans: planned once,
        an index lookup. Scoped to the transaction (``SET LOCAL``): a rollback ends it too."""
        if not self._postgresql:
            yield
            return
        session.execute(_CUSTOM_PLANS)
        yield
        session.execute(_AUTO_PLANS)

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
        with self._planned_per_run(session):
            seen: set[str] = set()
            array = self._postgresql
            processed = _select_rows(session, ProcessedEvent, ("event_id",), "event_id", event_ids, array)
            seen.update(row[0] for row in processed)
            for state in _select_states(session, Customer, CustomerState, "customer_id", missed_customers, array):
                state.stage = Stage(state.stage) if state.stage else None
                state.recent_csat = [(str(a), str(b), int(c)) for a, b, c in state.recent_csat or []]
                customers[state.customer_id] = state
            # every deal of the batch's customers: the stage rule needs them all
            for deal in _select_states(session, Deal, DealState, "customer_id", missed_customers, array):
                deals[deal.deal_id] = deal
            for deal in _select_states(session, Deal, DealState, "deal_id", set(deal_ids) - deals.keys(), array):
                deals[deal.deal_id] = deal
            for ticket in _select_states(session, Ticket, TicketState, "ticket_id", missed_tickets, array):
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
        fields = _FIELDS[type(states[next(iter(changed))])]
        self._insert(session, model, fields, [_row(states[key]) for key in changed if key not in before])
        updated = (_row(states[key]) for key in changed if key in before)
        for columns, rows in _changes(fields, updated, before).items():
            statement_columns = (fields[0], *columns)  # the key first, as in every row
            self._write(session, model, fields, rows, statement_columns, _update_from_arrays, _driver_update)

    def _insert(
        self, session: Session, model: type[Base], fields: tuple[str, ...], rows: Sequence[tuple[Any, ...]]
    ) -> None:
        if rows:
            self._write(session, model, fields, rows, fields, _insert_from_arrays, _driver_insert)

    def _write(
        self,
        session: Session,
        model: type[Base],
        fields: tuple[str, ...],
        rows: Sequence[tuple[Any, ...]],
        columns: tuple[str, ...],
        from_arrays: Callable[[type[Base], tuple[str, ...]], Insert | Update],
        executemany: Callable[[type[Base], tuple[str, ...], tuple[str, ...], Dialect], _DriverExecutemany],
    ) -> None:
        """``rows`` hold the values of ``fields``, in order; the statement writes ``columns`` of them.
        PostgreSQL: one statement over column arrays; SQLite: the driver's executemany."""
        if self._postgresql:
            session.execute(from_arrays(model, columns), _as_arrays(model, columns, fields, rows))
        else:
            executemany(model, columns, fields, self.engine.dialect).run(session, rows)

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
        with self._planned_per_run(session):
            for chunk in _chunks(event_ids):
                session.execute(_mark_published(self._postgresql), {"values": chunk})
