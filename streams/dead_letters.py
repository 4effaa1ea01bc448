"""The dead-letter topic: rejected messages keep their original bytes; headers say why.

Header names follow Kafka Connect's ``__connect.errors.*`` convention under our own prefix, so
tools that already read those understand these.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from kafka import KafkaConsumer, TopicPartition

from streams.pipeline import DeadLetter
from streams.settings import Settings

PREFIX = "lifecycle.errors."
H_TOPIC, H_PARTITION, H_OFFSET = PREFIX + "topic", PREFIX + "partition", PREFIX + "offset"
H_CLASS, H_REASON, H_FAILED_AT = PREFIX + "class", PREFIX + "reason", PREFIX + "failed_at"


def dead_letter_headers(letter: DeadLetter) -> list[tuple[str, bytes]]:
    """The original headers first (minus any earlier error headers), then ours."""
    message = letter.message
    original = [(k, v) for k, v in message.headers if not k.startswith(PREFIX)]
    return [
        *original,
        (H_TOPIC, message.topic.encode()),
        (H_PARTITION, str(message.partition).encode()),
        (H_OFFSET, str(message.offset).encode()),
        (H_CLASS, letter.error_class.encode()),
        (H_REASON, letter.reason.encode()[:2000]),
        (H_FAILED_AT, datetime.now(UTC).isoformat().encode()),
    ]


@dataclass(frozen=True, slots=True)
class StoredDeadLetter:
    dlq_partition: int
    dlq_offset: int
    key: bytes | None
    value: bytes | None
    source_topic: str
    source_partition: int
    source_offset: int
    error_class: str
    reason: str
    original_headers: list[tuple[str, bytes]]

    def as_dict(self) -> dict[str, object]:
        return {
            "dlq_partition": self.dlq_partition,
            "dlq_offset": self.dlq_offset,
            "source_topic": self.source_topic,
            "source_partition": self.source_partition,
            "source_offset": self.source_offset,
            "error_class": self.error_class,
            "reason": self.reason,
            "key": self.key.decode(errors="replace") if self.key is not None else None,
            "value": self.value[:500].decode(errors="replace") if self.value is not None else None,
        }


def _parse(record: object) -> StoredDeadLetter:
    headers: list[tuple[str, bytes]] = list(record.headers or [])  # type: ignore[attr-defined]
    ours = {k: v.decode(errors="replace") for k, v in headers if k.startswith(PREFIX)}
    return StoredDeadLetter(
        dlq_partition=record.partition,  # type: ignore[attr-defined]
        dlq_offset=record.offset,  # type: ignore[attr-defined]
        key=record.key,  # type: ignore[attr-defined]
        value=record.value,  # type: ignore[attr-defined]
        source_topic=ours.get(H_TOPIC, ""),
        source_partition=int(ours.get(H_PARTITION, "-1")),
        source_offset=int(ours.get(H_OFFSET, "-1")),
        error_class=ours.get(H_CLASS, ""),
        reason=ours.get(H_REASON, ""),
        original_headers=[(k, v) for k, v in headers if not k.startswith(PREFIX)],
    )


def read_dead_letters(settings: Settings) -> Iterator[StoredDeadLetter]:
    """Everything on the DLQ from the beginning to the end as of now (no consumer group, no commits)."""
    consumer = KafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        enable_auto_commit=False,
        group_id=None,
        consumer_timeout_ms=2000,
        **settings.kafka_python_security(),
    )
    try:
        partitions = [
            TopicPartition(settings.topic_dlq, p) for p in consumer.partitions_for_topic(settings.topic_dlq) or ()
        ]
        if not partitions:
            return
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        remaining = {tp for tp in partitions if end[tp] > 0}
        while remaining:
            batch = consumer.poll(timeout_ms=1000)
            if not batch and all(consumer.position(tp) >= end[tp] for tp in remaining):
                break
            for tp, records in batch.items():
                for record in records:
                    if record.offset < end[tp]:
                        yield _parse(record)
                if consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
    finally:
        consumer.close()


def replay(
    letters: Sequence[StoredDeadLetter],
    send: Callable[[str, bytes | None, bytes | None, list[tuple[str, bytes]]], None],
) -> int:
    """Re-publish to the source topic with the original key, value and headers."""
    for letter in letters:
        send(letter.source_topic, letter.key, letter.value, letter.original_headers)
    return len(letters)
