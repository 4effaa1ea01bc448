"""Engine creation: one place that knows dialect quirks."""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


# JSON columns (a customer's recent CSAT scores) through orjson: the standard library's json was 4 % of
# the pipeline process (profiled at 200 events a batch)
_JSON = {"json_serializer": _json_text, "json_deserializer": orjson.loads}


def make_engine(url: str) -> Engine:
    """SQLite gets WAL and a busy timeout (a reader must not fail the worker's writes)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30}, **_JSON)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            # 64 MiB of WAL between checkpoints (default 4 MiB): a batch of random event ids dirties
            # thousands of index pages in a large processed_events; written back once per many batches,
            # not after each one, cost per event stays flat as the table grows (README, Performance). The
            # worker's pipeline process turns this off and checkpoints in a thread: WalCheckpoints
            cursor.execute("PRAGMA wal_autocheckpoint=16000")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=4, max_overflow=2, **_JSON)


def redacted(url: str) -> str:
    """The URL with its password hidden, for logs."""
    return make_url(url).render_as_string(hide_password=True)


class WalCheckpoints:
    """SQLite: the WAL copied back into the database file by a thread of its own, off the write path.

    SQLite checkpoints inside the commit that fills the WAL to its limit (64 MiB here): 130 ms every
    ~6,000 events (measured), a stall for that batch and every event queued behind it, which made a
    good part of the end-to-end p99 (README, Performance). Here the engine's own connections never
    checkpoint; every ``interval`` seconds the thread copies the WAL back passively, writers going on
    meanwhile, twice (the second copies what was written during the first). Then the writer, between
    two transactions, calls :meth:`restart_if_due`: it copies the few pages written since and has the
    WAL start over from its beginning. A copy running beside a busy writer never gets there on its own
    (its WAL grew without end, measured), and a thread waiting for the writer's lock to do it starves."""

    def __init__(self, engine: Engine, *, interval: float = 2.0) -> None:
        self.database = str(engine.url.database)
        self.interval = interval
        event.listen(engine, "connect", _no_autocheckpoint)  # runs after make_engine's pragmas
        self._copied = threading.Event()  # copied back since the last restart
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wal-checkpoints", daemon=True)
        self._restarts: sqlite3.Connection | None = None  # the writer's thread's

    @classmethod
    def start_for(cls, engine: Engine, *, interval: float = 2.0) -> WalCheckpoints | None:
        """Started for a SQLite file before the engine's first connection; None for other databases."""
        if engine.dialect.name != "sqlite" or engine.url.database in (None, "", ":memory:"):
            return None
        checkpoints = cls(engine, interval=interval)
        checkpoints._thread.start()
        return checkpoints

    def restart_if_due(self) -> None:
        """For the writer, between its transactions: a few milliseconds once every ``interval``."""
        if not self._copied.is_set():
            return
        if self._restarts is None:
            self._restarts = _connect(self.database)
        try:
            self._checkpoint(self._restarts, "RESTART")
        finally:
            self._copied.clear()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()
        if self._restarts is not None:
            self._restarts.close()

    def _run(self) -> None:
        connection = _connect(self.database)
        try:
            while not self._stopped.wait(self.interval):
                self._checkpoint(connection, "PASSIVE")
                self._checkpoint(connection, "PASSIVE")
                self._copied.set()
        finally:
            connection.close()

    @staticmethod
    def _checkpoint(connection: sqlite3.Connection, mode: str) -> None:
        try:
            # fetchall: a statement left unfinished holds a read lock, and the WAL could not start over
            connection.execute(f"PRAGMA wal_checkpoint({mode})").fetchall()
        except sqlite3.Error as exc:  # the next round tries again; the writer's transactions are unaffected
            log.warning("WAL checkpoint (%s) failed: %s", mode, exc)


def _connect(database: str) -> sqlite3.Connection:
    return sqlite3.connect(database, timeout=30, isolation_level=None, check_same_thread=False)


def _no_autocheckpoint(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.close()
