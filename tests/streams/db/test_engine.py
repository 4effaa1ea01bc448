"""SQLite checkpoints run in a thread of their own (``WalCheckpoints``), not in a batch's commit; PostgreSQL
gets Python lists (a batch's columns) in the binary format."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from streams.db.engine import WalCheckpoints, make_engine
from tests.support import wait_for

ROWS_PER_TRANSACTION = 200


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'wal.db'}")
    yield engine
    engine.dispose()


def _write(engine: Engine, transactions: int, checkpoints: WalCheckpoints) -> None:
    """As the pipeline process writes: transaction after transaction, the WAL restarted in between, and
    a short wait for the next batch (unpaced, this writer outruns any copy: 200 MB/s of WAL)."""
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE IF NOT EXISTS t (payload TEXT)")
    for _ in range(transactions):
        with engine.begin() as connection:
            connection.exec_driver_sql("INSERT INTO t VALUES (?)", [("x" * 1000,)] * ROWS_PER_TRANSACTION)
        checkpoints.restart_if_due()
        time.sleep(0.002)


def _rows_in_database_file(path: Path) -> int:
    """What a checkpoint copied back: ``immutable`` reads the database file and ignores the WAL."""
    connection = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
    try:
        return int(connection.execute("SELECT count(*) FROM t").fetchone()[0])
    except sqlite3.DatabaseError:  # the table not in the file yet, or the file read mid-copy
        return -1
    finally:
        connection.close()


def test_the_engine_leaves_checkpoints_to_the_thread(engine: Engine, tmp_path: Path) -> None:
    checkpoints = WalCheckpoints.start_for(engine, interval=0.05)
    assert checkpoints is not None
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
        _write(engine, 20, checkpoints)
        total = 20 * ROWS_PER_TRANSACTION
        wait_for(lambda: _rows_in_database_file(tmp_path / "wal.db") == total, what="the WAL copied back")
    finally:
        checkpoints.stop()


def test_the_wal_starts_over_under_a_busy_writer(engine: Engine, tmp_path: Path) -> None:
    """A busy writer appends while the thread copies: the WAL must still start over, else its file grows
    by every transaction (to ~125 MB here)."""
    checkpoints = WalCheckpoints.start_for(engine, interval=0.2)
    assert checkpoints is not None
    try:
        _write(engine, 600, checkpoints)
        total = 600 * ROWS_PER_TRANSACTION
        wait_for(lambda: _rows_in_database_file(tmp_path / "wal.db") == total, what="the WAL copied back")
    finally:
        checkpoints.stop()
    # 23-27 MB measured: what the writer appends between two restarts, whatever it writes in all
    assert (tmp_path / "wal.db-wal").stat().st_size < 60 * 2**20


def test_only_a_sqlite_file_gets_the_thread() -> None:
    assert WalCheckpoints.start_for(make_engine("sqlite://")) is None
    assert WalCheckpoints.start_for(make_engine("postgresql+psycopg://user@127.0.0.1:1/none")) is None


def test_postgresql_gets_lists_in_the_binary_format(postgres_url: str) -> None:
    from psycopg.adapt import PyFormat
    from psycopg.types.array import ListBinaryDumper

    engine = make_engine(postgres_url)
    try:
        with engine.connect() as connection:
            driver = connection.connection.driver_connection
            assert driver is not None
            assert driver.adapters.get_dumper(list, PyFormat.AUTO) is ListBinaryDumper
            texts = ['a"b\\c', None, "x,y", "{}", ""]
            unnested = connection.exec_driver_sql("SELECT unnest(%(a)s::varchar[])", {"a": texts}).scalars().all()
            assert unnested == texts
    finally:
        engine.dispose()
