"""What the benchmarks run against: the simulator's seeded events, published to fresh topics on a broker,
the same stream with poison messages in it, and read models, empty or already holding many customers."""

from __future__ import annotations

import contextlib
import os
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from streams.kafka.broker import LocalKafka
from streams.settings import Settings

TOPICS = ("leads", "deals", "tickets")
POISON_KINDS = ("contract", "write")
POISON_FIELD = "bench_poison"  # what bench/poison_pipeline/sitecustomize.py makes Journeys.apply fail on
POISON_PIPELINE = Path(__file__).resolve().parent / "poison_pipeline"  # for PYTHONPATH
NOT_A_CURRENCY = "QQQ"  # the schema's pattern, not ISO 4217's
BEFORE_YEAR_ONE = "0001-01-01T00:30:00+01:00"  # the schema's pattern; its UTC is in year 0
# a message's document and its key (the customer_id, as the publisher sends it, unless a poison's)
Keyed = tuple[dict[str, Any], str]


def simulated(count: int, seed: int = 1) -> list[dict[str, Any]]:
    from streams.cli.simulator import simulate

    customers = max(1, count * 10 // 54)  # ~5.4 events a customer
    while len(events := simulate(customers, seed=seed).events) < count:
        customers = customers * 11 // 10 + 1
    return events[:count]


def _poison(documents: Sequence[dict[str, Any]], at: int, number: int, kind: str) -> Keyed:
    """The ``number``-th poison message, a copy of ``documents[at]`` (or, for a currency, of the next
    deal.opened or deal.won) under a new event id."""
    from streams.contract.vocabulary import MONEY_TYPES

    if kind == "write":
        return {**documents[at], "event_id": f"poison-{number:06d}", POISON_FIELD: True}, documents[at]["customer_id"]
    violation = number % 3
    if violation == 2:
        base = next((d for d in documents[at:] if d["type"] in MONEY_TYPES), None)
        base = base or next(d for d in documents if d["type"] in MONEY_TYPES)
        return {**base, "event_id": f"poison-{number:06d}", "currency": NOT_A_CURRENCY}, base["customer_id"]
    copy = {**documents[at], "event_id": f"poison-{number:06d}"}
    if violation == 0:
        copy["customer_id"] += "\x00"  # the key matching it: refused for the NUL, not as a key mismatch
    else:
        copy["occurred_at"] = BEFORE_YEAR_ONE
    return copy, copy["customer_id"]


def poisoned(documents: Sequence[dict[str, Any]], per_thousand: int, kind: str, seed: int = 11) -> list[Keyed]:
    """``len(documents)`` messages: ``documents`` with ``per_thousand`` poison messages in each 1,000
    inserted, one at a seeded random place in each block of 1,000 / ``per_thousand``; the last clean ones
    drop off. A poison is a copy of the clean event it comes before, under a new event id (so it changes
    nothing when refused). ``kind`` ``contract``: it breaks the contract where only the checks after the
    schema see it, in turn a NUL in ``customer_id`` (the key matching it), an ``occurred_at`` whose UTC
    is before year 1, a currency not in ISO 4217 (on a copy of the next deal.opened or deal.won);
    ``write``: it carries ``"bench_poison": true`` (``bench/poison_pipeline/sitecustomize.py``)."""
    if kind not in POISON_KINDS:
        raise ValueError(f"poison kind {kind!r} is none of {POISON_KINDS}")
    block = 1000 / per_thousand
    draw = random.Random(seed)
    places = {int(n * block) + draw.randrange(max(1, int(block))): n for n in range(int(len(documents) / block))}
    stream: list[Keyed] = []
    clean = 0
    while len(stream) < len(documents):
        number = places.get(len(stream))
        if number is None:
            stream.append((documents[clean], documents[clean]["customer_id"]))
            clean += 1
        else:
            stream.append(_poison(documents, clean, number, kind))
    return stream


def publish_poisoned(bootstrap: str, prefix: str, count: int, per_thousand: int, kind: str) -> list[str]:
    """:func:`published_stream`'s stream of ``count`` events, :func:`poisoned`, on fresh topics of the
    broker at ``bootstrap``; returns the topics. No validation: the poison goes out as it is."""
    import orjson

    from streams.kafka.publisher import EventPublisher

    topics, settings = _fresh_topics(bootstrap, prefix)
    with EventPublisher(settings) as publisher:
        for document, key in poisoned(simulated(count), per_thousand, kind):
            publisher.send_raw(publisher.topic_for(document["type"]), key.encode(), orjson.dumps(document))
    return topics


def _fresh_topics(bootstrap: str, prefix: str) -> tuple[list[str], Settings]:
    from streams.kafka.admin import ensure_topics

    suffix = uuid.uuid4().hex[:8]
    topics = [f"{prefix}-{name}-{suffix}" for name in TOPICS]
    os.environ["KAFKA_BOOTSTRAP_SERVERS"] = bootstrap
    settings = Settings(topic_leads=topics[0], topic_deals=topics[1], topic_tickets=topics[2])
    ensure_topics(settings, topics)
    return topics, settings


@contextlib.contextmanager
def published_stream(prefix: str, count: int) -> Iterator[tuple[str, list[str], int]]:
    """KAFKA_BOOTSTRAP_SERVERS, or a broker of our own for the duration; fresh topics holding the seeded
    stream of ``count`` events. Yields (bootstrap servers, topics, events published)."""
    from streams.kafka.publisher import EventPublisher

    broker = None
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or ""
    if not bootstrap:
        broker = LocalKafka(Path(tempfile.mkdtemp()) / "kafka").start()
        bootstrap = broker.bootstrap_servers
    try:
        topics, settings = _fresh_topics(bootstrap, prefix)
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
