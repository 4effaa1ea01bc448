"""Records to Kafka under Faust's producer: how the worker publishes dead letters and stage transitions."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Sequence
from typing import Any

import faust

from streams.pipeline.batches import Publish, Record


def kafka_publisher(app: faust.App, topic: str) -> Publish:
    """A batch's records as one record batch per partition (aiokafka's batch API), under Faust's producer.

    Sent one by one (``app.producer.send``: a future, a partitioner call and an accumulator append per
    record), the stage transitions would take a tenth of the worker's event loop under load. Partitions are
    Faust's own ``key_partition`` (aiokafka's default partitioner), so a key lands where ``send`` would
    put it; batches of one partition go out in order."""

    async def publish(records: Sequence[Record]) -> None:
        producer: Any = app.producer  # Faust's aiokafka driver: typed as the generic ProducerT
        kafka = producer._ensure_producer()  # the started aiokafka producer
        await kafka.partitions_for(topic)  # metadata first, as send() does: key_partition reads it
        by_partition: dict[int, list[Record]] = collections.defaultdict(list)
        for record in records:
            by_partition[producer.key_partition(topic, record[0]).partition].append(record)
        deliveries = []
        for partition, members in by_partition.items():
            batch = kafka.create_batch()
            for key, value, headers in members:
                if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:  # full
                    deliveries.append(await kafka.send_batch(batch, topic, partition=partition))
                    batch = kafka.create_batch()
                    batch.append(key=key, value=value, timestamp=None, headers=headers)  # a first one always fits
            deliveries.append(await kafka.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*deliveries)

    return publish
