"""The dead-letter topic's format: a rejected message keeps its original key, value and headers; our
headers say where it came from and why.

Header names follow Kafka Connect's ``__connect.errors.*`` convention under our own prefix, so
tools that already read those understand these.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from streams.contract.messages import DeadLetter

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


def parse_dead_letter(record: Any) -> StoredDeadLetter:
    headers: list[tuple[str, bytes]] = list(record.headers or [])
    ours = {k: v.decode(errors="replace") for k, v in headers if k.startswith(PREFIX)}
    return StoredDeadLetter(
        dlq_partition=record.partition,
        dlq_offset=record.offset,
        key=record.key,
        value=record.value,
        source_topic=ours.get(H_TOPIC, ""),
        source_partition=int(ours.get(H_PARTITION, "-1")),
        source_offset=int(ours.get(H_OFFSET, "-1")),
        error_class=ours.get(H_CLASS, ""),
        reason=ours.get(H_REASON, ""),
        original_headers=[(k, v) for k, v in headers if not k.startswith(PREFIX)],
    )
