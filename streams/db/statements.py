"""What both dialects' statements share: tables, the columns a state maps to, chunks of keys."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterator
from typing import Any
from typing import cast as typed_as

from sqlalchemy import Table

from streams.db.models import Base, Customer, Deal, Ticket
from streams.domain.journey import CustomerState, DealState, TicketState

# SQLite allows 32766 bound parameters; PostgreSQL 65535. Stay well below both.
IN_CHUNK = 5000
# dataclasses.fields() is slow enough to show in a profile: the names are looked up once
FIELDS: dict[type[Any], tuple[str, ...]] = {
    cls: tuple(f.name for f in dataclasses.fields(cls)) for cls in (CustomerState, DealState, TicketState)
}
KEYS: dict[type[Base], str] = {Customer: "customer_id", Deal: "deal_id", Ticket: "ticket_id"}


def chunks(values: Collection[str]) -> Iterator[list[str]]:
    ordered = list(values)
    for start in range(0, len(ordered), IN_CHUNK):
        yield ordered[start : start + IN_CHUNK]


def table_of(model: type[Base]) -> Table:
    return typed_as(Table, model.__table__)
