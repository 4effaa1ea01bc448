"""The SQLite path of the repository: statements compiled once and run on the driver's cursor.

SQLite runs in the pipeline's own process, so what SQLAlchemy does per row (building parameters,
converting values, making ``Row`` objects) is the cost of a batch; here it is done once per statement.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Insert, Select, Update, bindparam, insert, select, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

from streams.db.models import Base, StageTransition
from streams.db.statements import KEYS, chunks, table_of


@functools.cache
def _select_in(model: type[Base], columns: tuple[str, ...], key: str) -> Select[Any]:
    """``key`` is one of the bound ``values``: ``IN`` with one expanding parameter, so no statement is
    rebuilt and no value is coerced one by one per batch."""
    table = table_of(model)
    return select(*(table.c[name] for name in columns)).where(table.c[key].in_(bindparam("values", expanding=True)))


@functools.cache
def _update_by_key(model: type[Base], columns: tuple[str, ...]) -> Update:
    """Core executemany by primary key; bound names differ from the columns, as SQLAlchemy requires."""
    table, key = table_of(model), KEYS[model]
    return (
        update(table)
        .where(table.c[key] == bindparam(f"b_{key}"))
        .values({name: bindparam(f"b_{name}") for name in columns if name != key})
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
                conversions.append((index, sqlite_datetime(processor) if slow else processor))
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


REMEMBERED_TIMES = 20_000  # ~3 MiB


def sqlite_datetime(fallback: Callable[[Any], Any]) -> Callable[[Any], Any]:
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
                if len(texts) >= REMEMBERED_TIMES:
                    texts.clear()
                text = texts[value] = value.isoformat(" ", "microseconds")
            return text
        return fallback(value)

    return convert


@functools.cache
def _driver_insert(
    model: type[Base], columns: tuple[str, ...], fields: tuple[str, ...], dialect: Dialect
) -> _DriverExecutemany:
    statement = insert(table_of(model)).values({name: bindparam(name) for name in columns})
    return _DriverExecutemany.compile(statement, dialect, fields)


@functools.cache
def _driver_update(
    model: type[Base], columns: tuple[str, ...], fields: tuple[str, ...], dialect: Dialect
) -> _DriverExecutemany:
    return _DriverExecutemany.compile(_update_by_key(model, columns), dialect, fields, prefix="b_")


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
        for chunk in chunks(values):
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
    return _DriverSelect.compile(_select_in(model, columns, key), dialect)


@functools.cache
def _mark_published() -> Update:
    table = table_of(StageTransition)
    return update(table).where(table.c.event_id.in_(bindparam("values", expanding=True))).values(published=True)


class SQLiteStatements:
    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect

    def select_rows(
        self, session: Session, model: type[Base], columns: tuple[str, ...], key: str, values: Collection[str]
    ) -> Iterator[Sequence[Any]]:
        return _driver_select(model, columns, key, self.dialect).rows(session, values)

    def insert(
        self, session: Session, model: type[Base], fields: tuple[str, ...], rows: Sequence[tuple[Any, ...]]
    ) -> None:
        _driver_insert(model, fields, fields, self.dialect).run(session, rows)

    def update(
        self,
        session: Session,
        model: type[Base],
        fields: tuple[str, ...],
        rows: Sequence[tuple[Any, ...]],
        columns: tuple[str, ...],
    ) -> None:
        _driver_update(model, columns, fields, self.dialect).run(session, rows)

    def mark_published(self, session: Session, event_ids: Sequence[str]) -> None:
        for chunk in chunks(event_ids):
            session.execute(_mark_published(), {"values": chunk})

    def selecting_by_lists(self, session: Session) -> AbstractContextManager[None]:
        return nullcontext()
