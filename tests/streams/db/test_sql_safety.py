"""All SQL goes through SQLAlchemy constructs with bound parameters: no string-built SQL in the product."""

from __future__ import annotations

import re

from tests.support import ROOT


def test_no_textual_sql_in_the_product() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for folder in ("streams", "agents")
        for path in (ROOT / folder).rglob("*.py")
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if re.search(r"\btext\(|exec_driver_sql|\.execute\(\s*f?[\"']", line)
        # constant connection pragmas (SQLite WAL) carry no input
        and not re.search(r"\.execute\(\"PRAGMA [a-z_]+=[A-Z0-9]+\"\)", line)
        # the migrations' SQLite write lock, a constant statement
        and 'exec_driver_sql("BEGIN IMMEDIATE")' not in line
        # the repository's SQLite executemany: SQL that SQLAlchemy compiled from a construct, values bound
        and "exec_driver_sql(self.sql, parameters)" not in line
        # its SQLite selects: the same, with one `?` per key in the list, the keys bound
        and "exec_driver_sql(sql, tuple(chunk))" not in line
    ]
    assert offenders == []
