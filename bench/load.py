"""What the benchmarks run against: the simulator's seeded events, published to fresh topics on a broker,
and read models, empty or already holding many customers."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from streams.kafka.broker import LocalKafka
from streams.settings import Settings

TOPICS = ("leads", "deals", "tickets")


def simulated(count: int, seed: int = 1) -> list[dict[str, Any]]:
    from streams.cli.simulator import simulate

    customers = max(1, count * 10 // 54)  # ~5.4 events a customer
    while len(events := simulate(customers, seed=seed).events) < count:
        customers = customers * 11 // 10 + 1
    return events[:count]


@contextlib.contextmanager
def published_stream(prefix: str, count: int) -> Iterator[tuple[str, list[str], int]]:
    """KAFKA_BOOTSTRAP_SERVERS, or a broker of our own for the duration; fresh topics holding the seeded
    stream of ``count`` events. Yields (bootstrap servers, topics, events published)."""
    from streams.kafka.admin import ensure_topics
    from streams.kafka.publisher import EventPublisher

    broker = None
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or ""
    if not bootstrap:
        broker = LocalKafka(Path(tempfile.mkdtemp()) / "kafka").start()
        bootstrap = broker.bootstrap_servers
    try:
        suffix = uuid.uuid4().hex[:8]
        topics = [f"{prefix}-{name}-{suffix}" for name in TOPICS]
        os.environ["KAFKA_BOOTSTRAP_SERVERS"] = bootstrap
        settings = Settings(topic_leads=topics[0], topic_deals=topics[1], topic_tickets=topics[2])
        ensure_topics(settings, topics)
        events = simulated(count)
        with EventPublisher(settings) as publisher:
            for document in events:
                publisher.publish(document)
        yield bootstrap, topics, len(events)
    finally:
        if broker is not None:
            broker.stop()


def fresh_sqlite() -> str:
    return f"sqlite:///{tempfile.mkdtemp()}/bench.db"


def prefill(database_url: str, customers: int) -> None:
    """A read model that already holds ``customers`` customers (ids not in the stream), with their
    tickets, deals and processed-event records, so the measured stream runs against tables that size."""
    from sqlalchemy import insert

    from streams.db.engine import make_engine
    from streams.db.migrations import upgrade
    from streams.db.models import Customer, Deal, ProcessedEvent, Ticket

    engine = make_engine(database_url)
    upgrade(engine)
    moment = datetime(2026, 1, 1)
    chunk = 20_000
    with engine.begin() as connection:
        for start in range(0, customers, chunk):
            ids = [f"pre-{n:08d}" for n in range(start, min(customers, start + chunk))]
            connection.execute(
                insert(Customer),
                [{"customer_id": i, "stage": "customer", "first_seen_at": moment, "recent_csat": []} for i in ids],
            )
            connection.execute(
                insert(Ticket),
                [{"ticket_id": f"t-{i}", "customer_id": i, "status": "resolved", "opened_at": moment} for i in ids],
            )
            connection.execute(
                insert(Deal),
                [{"deal_id": f"d-{i}", "customer_id": i, "status": "won", "amount": 100.0} for i in ids[::2]],
            )
            connection.execute(insert(ProcessedEvent), [{"event_id": f"e-{i}-{k}"} for i in ids for k in range(5)])
    engine.dispose()


def prefilled_sqlite(customers: int) -> Path:
    template = Path(tempfile.mkdtemp()) / "template.db"
    started = time.perf_counter()
    prefill(f"sqlite:///{template}", customers)
    print(f"prefilled {customers:,} customers in {time.perf_counter() - started:.0f}s", file=sys.stderr)
    return template


def fresh_postgres_database(server_url: str) -> str:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))  # our own generated name
    admin.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)
