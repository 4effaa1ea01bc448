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


def json_text(value: Any) -> str:
    """A JSON column's text, the one encoding for every JSON value the database gets."""
    return orjson.dumps(value).decode()


# JSON columns (a customer's recent CSAT scores) through orjson: the standard library's encoder costs
# 4 % of the pipeline process's instructions per event
_JSON_CODEC: dict[str, Any] = {"json_serializer": json_text, "json_deserializer": orjson.loads}


def make_engine(url: str) -> Engine:
    """SQLite gets WAL and a busy timeout (a reader must not fail the worker's writes)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30}, **_JSON_CODEC)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            # 64 MiB of WAL between checkpoints (default 4 MiB): a batch of random event ids dirties
            # thousands of index pages in a large processed_events; written back once per many batches,
            # not after each one, cost per event stays flat as the table grows (docs/performance.md). The
            # worker's pipeline process turns this off and checkpoints in a thread: WalCheckpoints
            cursor.execute("PRAGMA wal_autocheckpoint=16000")
            cursor.close()

        return engine
    engine = create_engine(url, pool_pre_ping=True, pool_size=4, max_overflow=2, **_JSON_CODEC)
    if parsed.get_driver_name() == "psycopg":
        event.listen(engine, "connect", _lists_in_binary)
    return engine


def _lists_in_binary(dbapi_connection: Any, _record: Any) -> None:
    """psycopg sends a Python list (a batch's column, written through ``unnest``; the keys of ``= ANY``)
    in the text format unless told otherwise, escaping element by element in Python: a good part of the
    pipeline process's time in large batches. The binary format dumps each element in C, ~9 times
    faster (docs/performance.md); the statements' casts take either."""
    from psycopg.types.array import ListBinaryDumper

    dbapi_connection.adapters.register_dumper(list, ListBinaryDumper)


def redacted(url: str) -> str:
    """The URL with its password hidden, for logs."""
    return make_url(url).render_as_string(hide_password=True)


class WalCheckpoints:
    """SQLite: the WAL copied back into the database file by a thread of its own, off the write path.

    SQLite checkpoints inside the commit that fills the WAL to its limit (64 MiB here): a stall of
    ~130 ms for that batch and every event queued behind it, a good part of the end-to-end p99
    (docs/storage.md). Here the engine's own connections never checkpoint. Every ``interval`` seconds
    the thread copies the WAL back passively, writers going on meanwhile, and again while they appended
    during the copy. Copies alone never have a busy writer's WAL start over (it grows without end), and
    a ``RESTART`` from the thread starves waiting for the writer's lock: so the writer, between two
    transactions, calls :meth:`restart_if_due`, which copies the little written since and has the WAL
    start over from its beginning."""

    PASSES = 8  # a pass copies what was appended during the one before: fewer pages each time

    def __init__(self, engine: Engine, *, interval: float = 2.0) -> None:
        self.database = str(engine.url.database)
        self.interval = interval
        event.listen(engine, "connect", _no_autocheckpoint)  # runs after make_engine's pragmas
        self._copying = threading.Lock()  # the two never checkpoint at once: one would wait for the other
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
        if not self._copied.is_set() or not self._copying.acquire(blocking=False):
            return
        try:
            if self._restarts is None:
                # a reader (a query on the file) keeps the WAL from starting over: then try after the next
                # transaction, rather than hold the writer up
                self._restarts = _connect(self.database, timeout=0.02)
            if _checkpoint(self._restarts, _RESTART):
                self._copied.clear()
        finally:
            self._copying.release()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()
        if self._restarts is not None:
            self._restarts.close()

    def _run(self) -> None:
        connection = _connect(self.database, timeout=0)  # passive copies never wait
        try:
            while not self._stopped.wait(self.interval):
                with self._copying:
                    frames = None
                    for _ in range(self.PASSES):
                        written = _checkpoint(connection, _PASSIVE)
                        if written is None or written == frames:  # nothing appended during the last copy
                            break
                        frames = written
                self._copied.set()
        finally:
            connection.close()


def _connect(database: str, *, timeout: float) -> sqlite3.Connection:
    return sqlite3.connect(database, timeout=timeout, isolation_level=None, check_same_thread=False)


_PASSIVE = "PRAGMA wal_checkpoint(PASSIVE)"
_RESTART = "PRAGMA wal_checkpoint(RESTART)"


def _checkpoint(connection: sqlite3.Connection, pragma: str) -> int | None:
    """Frames in the WAL once done; None while a reader or writer kept it from finishing, or it failed."""
    try:
        # fetchall: a statement left unfinished holds a read lock, and the WAL could not start over
        busy, frames, _ = connection.execute(pragma).fetchall()[0]
    except sqlite3.Error as exc:  # the next round tries again; the writer's transactions go on
        log.warning("%s failed: %s", pragma, exc)
        return None
    return None if busy else int(frames)


def _no_autocheckpoint(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.close()
