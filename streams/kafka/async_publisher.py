"""The validating publisher on an asyncio event loop (aiokafka, the worker's client): for the gateway.

kafka-python blocks, so an async server must hop to a thread for every send and every acknowledgement;
measured in the gateway (bench.gateway), that hop and kafka-python's per-record Python cost held it at
a tenth of a bare handler's rate. aiokafka sends from the loop itself and batches the records of every
request in flight into one produce request per partition.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from streams.kafka.publisher import contract_record, event_topics
from streams.kafka.security import KafkaSecurity
from streams.settings import Settings

log = logging.getLogger(__name__)
Delivery = asyncio.Future[Any]  # set once Kafka acknowledged the record (acks=all)


class AsyncEventPublisher:
    """Start it in the loop that uses it; :meth:`publish` raises
    :class:`~streams.domain.errors.InvalidEvent` before anything is sent, like
    :class:`~streams.kafka.publisher.EventPublisher`."""

    def __init__(self, settings: Settings, *, timeout_seconds: float) -> None:
        """``timeout_seconds``: how long a send may wait for Kafka (metadata, buffer space, the
        acknowledgement) before it fails, instead of aiokafka's 40 s."""
        self.topics = event_topics(settings)
        self.timeout_seconds = timeout_seconds
        timeout_ms = int(timeout_seconds * 1000)
        self.producer = AIOKafkaProducer(
            bootstrap_servers=settings.bootstrap_servers,
            acks="all",
            enable_idempotence=True,
            linger_ms=1,
            max_batch_size=256 * 1024,
            request_timeout_ms=timeout_ms,
            **KafkaSecurity.from_settings(settings).kafka_python(),
        )

    async def start(self) -> None:
        """Connects; raises :class:`aiokafka.errors.KafkaError` while Kafka cannot be reached."""
        await self.producer.start()

    async def stop(self) -> None:
        """Sends what is pending and closes, within the timeout: the idempotent producer would retry
        forever while Kafka is down, and a gateway that is told to stop must stop. What Kafka has not
        taken by then is dropped; its requests were answered 503, or not at all (the vendor retries)."""
        try:
            await asyncio.wait_for(self.producer.stop(), self.timeout_seconds)
        except TimeoutError:
            log.warning("stopped with records Kafka had not acknowledged in %.0f s", self.timeout_seconds)

    async def publish(self, event: Mapping[str, Any]) -> Delivery:
        """Validates and queues the event; the returned future is its acknowledgement."""
        return await self.send_raw(*contract_record(self.topics, event))

    async def send_raw(
        self, topic: str, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]] | None = None
    ) -> Delivery:
        """No validation: for dead letters."""
        delivery: Delivery = await self.producer.send(topic, value=value, key=key, headers=headers)
        return delivery


def acknowledgement(deliveries: Sequence[Delivery]) -> asyncio.Future[None]:
    """One future for many deliveries: done once all are, failed with the first that fails. Cancelling
    it (a timeout) cancels none of them: a record already handed to aiokafka is aiokafka's to finish."""
    together: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    remaining = len(deliveries)

    def settled(delivery: Delivery) -> None:
        nonlocal remaining
        remaining -= 1
        # retrieved whatever becomes of ``together``: asyncio logs every failure nobody retrieved
        failure = KafkaError("a delivery was cancelled") if delivery.cancelled() else delivery.exception()
        if together.done():
            return
        if failure is not None:
            together.set_exception(failure)
        elif remaining == 0:
            together.set_result(None)

    if not deliveries:
        together.set_result(None)
    for delivery in deliveries:
        delivery.add_done_callback(settled)
    return together
