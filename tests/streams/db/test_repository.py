"""The repository's SQLite fast paths write and read exactly what SQLAlchemy would."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, select
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from streams.db.engine import make_engine
from streams.db.migrations import upgrade
from streams.db.models import Customer, Deal
from streams.db.sqlite import REMEMBERED_TIMES, SQLiteStatements, sqlite_datetime
from streams.db.statements import FIELDS, IN_CHUNK
from streams.domain.journey import CustomerState, DealState


@pytest.mark.parametrize(
    "value",
    [
        datetime(2026, 1, 2, 3, 4, 5, 6),
        datetime(2026, 11, 27),
        datetime(1, 1, 1),
        datetime(2026, 5, 5, 12, tzinfo=UTC),
        date(2026, 1, 2),
        None,
    ],
)
def test_datetime_text_is_sqlalchemy_own(value: date | None) -> None:
    processor = sqlite.DATETIME().bind_processor(sqlite.dialect())  # type: ignore[no-untyped-call]
    assert processor is not None
    assert sqlite_datetime(processor)(value) == processor(value)


def test_datetime_texts_stay_right_beyond_the_remembered_ones() -> None:
    processor = sqlite.DATETIME().bind_processor(sqlite.dialect())  # type: ignore[no-untyped-call]
    assert processor is not None
    convert = sqlite_datetime(processor)
    moments = [datetime(2026, 1, 1) + timedelta(seconds=n, microseconds=n) for n in range(REMEMBERED_TIMES + 500)]
    for _ in range(2):  # the second pass reads remembered texts, and some that were dropped
        assert [convert(moment) for moment in moments] == [processor(moment) for moment in moments]


def test_sqlite_selects_give_what_sqlalchemy_gives(tmp_path: Path) -> None:
    """More keys than one ``IN`` list takes, rows with every converted type (times, JSON, numbers)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'select.db'}")
    upgrade(engine)
    count = IN_CHUNK + 7
    customers = [
        {
            "customer_id": f"c-{n}",
            "stage": "customer" if n % 2 else None,
            "first_seen_at": datetime(2026, 1, 1, 0, 0, n % 60, n),
            "recent_csat": [["t-1", "2026-01-01T00:00:00", n % 5 + 1]] if n % 3 else [],
        }
        for n in range(count)
    ]
    deals = [
        {
            "deal_id": f"d-{n}",
            "customer_id": f"c-{n}",
            "status": "won",
            "amount": n + 0.25,
            "won_at": datetime(2026, 2, n % 28 + 1),
        }
        for n in range(0, count, 2)
    ]
    with Session(engine) as session, session.begin():
        session.execute(insert(Customer), customers)
        session.execute(insert(Deal), deals)
    wanted = {f"c-{n}" for n in range(count)} | {"c-missing"}
    for model, cls in ((Customer, CustomerState), (Deal, DealState)):
        columns = FIELDS[cls]
        with Session(engine) as session:
            ours = sorted(
                tuple(row)
                for row in SQLiteStatements(engine.dialect).select_rows(session, model, columns, "customer_id", wanted)
            )
            table = model.__table__
            theirs = sorted(
                tuple(row)
                for row in session.execute(select(*(table.c[name] for name in columns)))  # type: ignore[attr-defined]
            )
        assert ours == theirs
        assert len(ours) == (count if model is Customer else len(deals))
