"""Rebuild the read model from the source topics: drop it, then replay every message from offset 0.

Dead letters are not re-sent (they are on the DLQ already) and transitions are not re-published
(the `lifecycle` topic has them); the rebuilt rows are what the worker wrote the first time.
"""

from __future__ import annotations

import logging

from kafka import KafkaConsumer, TopicPartition
from sqlalchemy import update

from streams.db.engine import make_engine
from streams.db.migrations import reset
from streams.db.models import StageTransition
from streams.db.repository import Repository
from streams.pipeline import Pipeline, RawMessage
from streams.settings import Settings

log = logging.getLogger(__name__)


def rebuild(settings: Settings, *, batch_size: int = 5000) -> int:
    engine = make_engine(settings.sqlalchemy_url)
    reset(engine)
    pipeline = Pipeline(
        Repository(
            engine,
            at_risk_threshold=settings.at_risk_csat_threshold,
            state_cache_customers=settings.state_cache_customers,
        ),
        settings.source_topics,
        max_message_bytes=settings.max_message_bytes,
    )
    consumer = KafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        enable_auto_commit=False,
        group_id=None,
        max_poll_records=batch_size,
        **settings.kafka_python_security(),
    )
    total = 0
    try:
        partitions = [
            TopicPartition(topic, partition)
            for topic in settings.source_topics.values()
            for partition in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        remaining = {tp for tp in partitions if end[tp] > 0}
        while remaining:
            polled = consumer.poll(timeout_ms=1000, max_records=batch_size)
            batch = [
                RawMessage(tp.topic, tp.partition, r.offset, r.key, r.value, list(r.headers or []))
                for tp, records in polled.items()
                for r in records
                if r.offset < end[tp]
            ]
            if batch:
                pipeline.process(batch)
                total += len(batch)
            for tp in list(remaining):
                if consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
    finally:
        consumer.close()
    with engine.begin() as connection:
        connection.execute(update(StageTransition).values(published=True))
    log.info("rebuilt the read model from %d messages", total)
    return total
