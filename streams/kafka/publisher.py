"""The upstream client: validates an event against the contract, then sends it keyed by customer.

For Python systems upstream of the pipeline (kafka-python). An invalid event raises
:class:`~streams.domain.errors.InvalidEvent` before anything is sent, so the caller learns at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from kafka import KafkaProducer
from kafka.producer.future import FutureRecordMetadata

from streams.contract.decoding import validate_document
from streams.contract.vocabulary import EVENT_TOPICS
from streams.domain.errors import InvalidEvent
from streams.kafka.security import KafkaSecurity
from streams.settings import Settings


def contract_record(topics: Mapping[str, str], event: Mapping[str, Any]) -> tuple[str, bytes, bytes]:
    """The record a contract event is published as: (its type's source topic in ``topics``, from
    :func:`event_topics`; the customer id as key; the JSON); raises :class:`InvalidEvent` for an event the
    contract refuses. Every publisher goes through it, so an event lands where the worker expects it,
    keyed as it expects."""
    validated = validate_document(dict(event))
    return topics[validated.type], validated.customer_id.encode(), orjson.dumps(event)


def event_topics(settings: Settings) -> dict[str, str]:
    """Event type -> the configured source topic it is published on."""
    return {event_type: settings.source_topics[topic] for event_type, topic in EVENT_TOPICS.items()}


class EventPublisher:
    def __init__(self, settings: Settings, *, producer: KafkaProducer | None = None) -> None:
        self.settings = settings
        self.topics = event_topics(settings)
        self.producer = producer or KafkaProducer(
            bootstrap_servers=settings.bootstrap_servers,
            acks="all",
            linger_ms=5,
            batch_size=256 * 1024,
            enable_idempotence=True,
            max_in_flight_requests_per_connection=5,
            **KafkaSecurity.from_settings(settings).kafka_python(),
        )

    def topic_for(self, event_type: str) -> str:
        return self.topics[event_type]

    def publish(self, event: Mapping[str, Any]) -> FutureRecordMetadata:
        """Validate and send asynchronously; :meth:`flush`, or the returned future, waits for delivery."""
        return self.send_raw(*contract_record(self.topics, event))

    def send_raw(
        self, topic: str, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]] | None = None
    ) -> FutureRecordMetadata:
        """No validation: for tools (DLQ replay, tests of bad input) and dead letters."""
        return self.producer.send(topic, key=key, value=value, headers=headers or [])

    def publish_many(self, events: Iterable[Mapping[str, Any]]) -> tuple[int, list[tuple[int, InvalidEvent]]]:
        """Publish what is valid; returns (sent, [(index, error)]) so a file's bad lines are reported."""
        sent, errors = 0, []
        for index, event in enumerate(events):
            try:
                self.publish(event)
                sent += 1
            except InvalidEvent as exc:
                errors.append((index, exc))
        return sent, errors

    def flush(self, timeout: float | None = 60.0) -> None:
        self.producer.flush(timeout)

    def close(self) -> None:
        self.producer.flush()
        self.producer.close()

    def __enter__(self) -> EventPublisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
