"""The repository's SQLite fast path writes exactly what SQLAlchemy would."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy.dialects import sqlite

from streams.db.repository import _sqlite_datetime


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
    assert _sqlite_datetime(processor)(value) == processor(value)
