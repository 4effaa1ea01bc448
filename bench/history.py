"""What history costs: an event's CPU against its customer's number of deals, and the database's size
after a long stream with and without the dedup records' retention. No Kafka, no worker: the pipeline on
a fresh SQLite file (or PostgreSQL database), as ``bench.pipeline_cpu`` runs it.

    .venv/bin/python -m bench.history                       # 1M events, ~6 min on the 2-core machine
    .venv/bin/python -m bench.history --events 200000 --postgres postgresql+psycopg://…

Cost: one customer with 10, then 5,000 won deals; then 2,000 ``ticket.opened`` of that customer in
batches of 200, no kept states (every batch reads the customer from the database): CPU µs per ticket
event, and the ratio of the two.

Size: the simulator's stream in batches of 2,000, processed "live": the pipeline's clock is the batch's
latest ``occurred_at``, and the background pruning runs after every 10 batches until nothing is due
(the worker prunes every 10 s), once with ``LIFECYCLE_DEDUP_RETENTION_DAYS=30`` and once with 0 (kept
forever). Prints the dedup records left and the database's size (SQLite: the file after a checkpoint;
PostgreSQL: ``pg_database_size``).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, func, select, text

from bench.load import fresh_postgres_database, simulated
from streams.contract.messages import RawMessage
from streams.contract.timestamps import parse_timestamp
from streams.contract.vocabulary import EVENT_TOPICS
from streams.db.engine import make_engine
from streams.db.migrations import upgrade
from streams.db.models import ProcessedEvent
from streams.db.repository import Repository
from streams.pipeline.service import Pipeline

TOPICS = {topic: topic for topic in set(EVENT_TOPICS.values())}
PRUNE_EVERY = 10  # batches
PARTS_KEPT = timedelta(days=1)


def _message(document: dict[str, Any], offset: int) -> RawMessage:
    return RawMessage(
        EVENT_TOPICS[document["type"]], 0, offset, document["customer_id"].encode(), orjson.dumps(document)
    )


def _fresh(postgres: str | None) -> tuple[str, Engine]:
    url = fresh_postgres_database(postgres) if postgres else f"sqlite:///{tempfile.mkdtemp()}/history.db"
    engine = make_engine(url)
    upgrade(engine)
    return url, engine


def cost_per_event(deals: int, postgres: str | None) -> float:
    """CPU µs per ``ticket.opened`` of a customer with ``deals`` won deals."""
    _, engine = _fresh(postgres)
    pipeline = Pipeline(Repository(engine), TOPICS)
    at = "2026-01-01T00:00:00Z"
    won = [
        {"event_id": f"won-{n}", "type": "deal.won", "customer_id": "c-1", "occurred_at": at, "schema_version": 1,
         "deal_id": f"d-{n}", "amount": 100, "currency": "EUR", "owner": "ana"}
        for n in range(deals)
    ]  # fmt: skip
    for start in range(0, deals, 2000):
        pipeline.process([_message(d, n) for n, d in enumerate(won[start : start + 2000], start)])
    tickets = [
        _message(
            {"event_id": f"t-{n}", "type": "ticket.opened", "customer_id": "c-1", "occurred_at": at,
             "schema_version": 1, "ticket_id": f"t-{n}", "channel": "email", "priority": "normal"},
            deals + n,
        )
        for n in range(2000)
    ]  # fmt: skip
    started = time.process_time()
    for start in range(0, len(tickets), 200):
        pipeline.process(tickets[start : start + 200])
    elapsed = time.process_time() - started
    engine.dispose()
    return elapsed / len(tickets) * 1e6


def size_after(events: int, retention_days: float, postgres: str | None) -> tuple[int, int, int, float]:
    """(dedup records left, database bytes, bytes in use, seconds) after ``events`` processed live. SQLite
    keeps the pages that deletes free for later inserts (the file does not shrink): in use is the file
    less its free pages."""
    url, engine = _fresh(postgres)
    now = datetime(2026, 1, 1)

    def clock() -> datetime:
        return now

    retention = timedelta(days=retention_days) if retention_days > 0 else None
    pipeline = Pipeline(Repository(engine), TOPICS, dedup_retention=retention, clock=clock)
    documents = simulated(events, seed=3)
    started = time.perf_counter()
    for number, start in enumerate(range(0, len(documents), 2000)):
        batch = documents[start : start + 2000]
        now = max(now, parse_timestamp(batch[-1]["occurred_at"]))
        pipeline.process([_message(d, n) for n, d in enumerate(batch, start)])
        if number % PRUNE_EVERY == 0:
            _prune(pipeline.repository.prune, now)
    elapsed = time.perf_counter() - started
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:  # VACUUM needs it
        left = int(connection.scalar(select(func.count()).select_from(ProcessedEvent)) or 0)
        if postgres:
            connection.exec_driver_sql("VACUUM")  # marks dead rows' space free, as autovacuum would
            size = in_use = int(connection.scalar(text("SELECT pg_database_size(current_database())")) or 0)
        else:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            size = Path(url.removeprefix("sqlite:///")).stat().st_size
            free = int(connection.exec_driver_sql("PRAGMA freelist_count").scalar() or 0)
            in_use = size - free * int(connection.exec_driver_sql("PRAGMA page_size").scalar() or 0)
    engine.dispose()
    return left, size, in_use, elapsed


def _prune(prune: Callable[..., int], now: datetime) -> None:
    while prune(now, parts_before=now - PARTS_KEPT):
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--postgres", help="a PostgreSQL server URL: fresh databases on it instead of SQLite")
    parser.add_argument("--skip-cost", action="store_true")
    args = parser.parse_args()
    database = "PostgreSQL" if args.postgres else "SQLite"
    if not args.skip_cost:
        few, many = cost_per_event(10, args.postgres), cost_per_event(5000, args.postgres)
        print(
            f"{database}: ticket.opened CPU {few:.0f} us/event with 10 deals, {many:.0f} with 5,000: x{many / few:.2f}"
        )
    for days in (30.0, 0.0):
        left, size, in_use, elapsed = size_after(args.events, days, args.postgres)
        kept = f"retention {days:.0f} days" if days else "kept forever"
        print(
            f"{database}, {args.events:,} events, {kept}: {left:,} dedup records, "
            f"{size / 2**20:.1f} MiB ({in_use / 2**20:.1f} MiB in use), {args.events / elapsed:,.0f} events/s"
        )


if __name__ == "__main__":
    main()
