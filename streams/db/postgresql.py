"""The PostgreSQL path of the repository: a batch's rows travel as one array per column.

One statement per table and batch, planned and executed once in the server, where an executemany
runs one statement per row and an ``IN`` list has the server parse thousands of placeholders.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Collection, Iterator, Sequence
from typing import Any

from sqlalchemy import (
    ARRAY,
    JSON,
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
from sqlalchemy.orm import Session

from streams.db.engine import json_text
from streams.db.models import Base, StageTransition
from streams.db.statements import KEYS, chunks, table_of


@functools.cache
def _select_in(model: type[Base], columns: tuple[str, ...], key: str) -> Select[Any]:
    """``key = ANY(array)``: one parameter however many values."""
    table = table_of(model)
    column = table.c[key]
    return select(*(table.c[name] for name in columns)).where(
        column == any_(bindparam("values", type_=ARRAY(column.type)))
    )


@functools.cache
def _mark_published() -> Update:
    table = table_of(StageTransition)
    column = table.c.event_id
    return update(table).where(column == any_(bindparam("values", type_=ARRAY(column.type)))).values(published=True)


def _unnested(table: Table, name: str) -> Any:
    column = table.c[name]
    if isinstance(column.type, JSON):  # JSON travels as text: no array type adapts JSON documents
        return cast(func.unnest(bindparam(f"a_{name}", type_=ARRAY(Text))), column.type).label(name)
    return func.unnest(bindparam(f"a_{name}", type_=ARRAY(column.type))).label(name)


@functools.cache
def _rows_from_arrays(model: type[Base], columns: tuple[str, ...]) -> Select[Any]:
    """A batch's rows as one array per column, zipped back into rows by ``unnest`` in the
    server. One statement per table and batch, planned and executed once, where an executemany runs
    one statement per row."""
    table = table_of(model)
    return select(*(_unnested(table, name) for name in columns))


@functools.cache
def _insert_from_arrays(model: type[Base], columns: tuple[str, ...]) -> Insert:
    return insert(table_of(model)).from_select(list(columns), _rows_from_arrays(model, columns))


@functools.cache
def _update_from_arrays(model: type[Base], columns: tuple[str, ...]) -> Update:
    table, key = table_of(model), KEYS[model]
    rows = _rows_from_arrays(model, columns).subquery("batch")
    return (
        update(table).where(table.c[key] == rows.c[key]).values({name: rows.c[name] for name in columns if name != key})
    )


def _as_arrays(
    model: type[Base], columns: tuple[str, ...], fields: tuple[str, ...], rows: Sequence[tuple[Any, ...]]
) -> dict[str, list[Any]]:
    table = table_of(model)
    arrays = {}
    for name in columns:
        index = fields.index(name)
        values = [row[index] for row in rows]
        if isinstance(table.c[name].type, JSON):
            values = [json_text(value) for value in values]
        arrays[f"a_{name}"] = values
    return arrays


_CUSTOM_PLANS = select(func.set_config("plan_cache_mode", "force_custom_plan", True))  # = SET LOCAL

_AUTO_PLANS = select(func.set_config("plan_cache_mode", "auto", True))


class PostgreSQLStatements:
    def select_rows(
        self, session: Session, model: type[Base], columns: tuple[str, ...], key: str, values: Collection[str]
    ) -> Iterator[Sequence[Any]]:
        statement = _select_in(model, columns, key)
        return (row for chunk in chunks(values) for row in session.execute(statement, {"values": chunk}))

    def insert(
        self, session: Session, model: type[Base], fields: tuple[str, ...], rows: Sequence[tuple[Any, ...]]
    ) -> None:
        session.execute(_insert_from_arrays(model, fields), _as_arrays(model, fields, fields, rows))

    def update(
        self,
        session: Session,
        model: type[Base],
        fields: tuple[str, ...],
        rows: Sequence[tuple[Any, ...]],
        columns: tuple[str, ...],
    ) -> None:
        session.execute(_update_from_arrays(model, columns), _as_arrays(model, columns, fields, rows))

    def mark_published(self, session: Session, event_ids: Sequence[str]) -> None:
        for chunk in chunks(event_ids):
            session.execute(_mark_published(), {"values": chunk})

    @contextlib.contextmanager
    def selecting_by_lists(self, session: Session) -> Iterator[None]:
        """Statements that select by a list of values: psycopg
        prepares a statement run 5 times, and the server may then keep a generic plan made while the table
        was small, a sequential scan that gets slower with every stored event, to hundreds of milliseconds
        a batch in processed_events. The writes by primary key keep their generic plans: planned once,
        an index lookup. Scoped to the transaction (``SET LOCAL``): a rollback ends it too."""
        session.execute(_CUSTOM_PLANS)
        yield
        session.execute(_AUTO_PLANS)
