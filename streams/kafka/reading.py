"""Topics read from their beginning to their end as of now: no consumer group, no commits.

For the tools that look at what a topic holds (`lifecycle rebuild`, `lifecycle dlq`), never for the
worker, which consumes as a group through Faust.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from streams.kafka.security import KafkaSecurity
from streams.settings import Settings


def read_to_end(settings: Settings, topics: Iterable[str], *, batch_size: int = 500) -> Iterator[list[Any]]:
    """Batches of kafka-python records (``topic``, ``partition``, ``offset``, ``key``, ``value``,
    ``headers``), up to the end offsets taken at the start; records written later are not waited for."""
    consumer = KafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        enable_auto_commit=False,
        group_id=None,
        max_poll_records=batch_size,
        **KafkaSecurity.from_settings(settings).kafka_python(),
    )
    try:
        partitions = [
            TopicPartition(topic, partition)
            for topic in topics
            for partition in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        if not partitions:
            return
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        remaining = {tp for tp in partitions if end[tp] > 0}
        while remaining:
            polled = consumer.poll(timeout_ms=1000, max_records=batch_size)
            batch = [record for tp, records in polled.items() for record in records if record.offset < end[tp]]
            if batch:
                yield batch
            remaining = {tp for tp in remaining if consumer.position(tp) < end[tp]}
    finally:
        consumer.close()
