"""The dead-letter topic's format: a rejected message keeps its original key, value and headers; our
headers say where it came from and why. A dead letter larger than the dead-letter topic accepts is cut
to fit (:func:`fit_dead_letter`), and its headers say so: it is never the original then.

Header names follow Kafka Connect's ``__connect.errors.*`` convention under our own prefix, so
tools that already read those understand these.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from streams.contract.messages import DeadLetter

PREFIX = "lifecycle.errors."
H_TOPIC, H_PARTITION, H_OFFSET = PREFIX + "topic", PREFIX + "partition", PREFIX + "offset"
H_CLASS, H_REASON, H_FAILED_AT = PREFIX + "class", PREFIX + "reason", PREFIX + "failed_at"
# only on a dead letter cut to fit (fit_dead_letter)
H_TRUNCATED, H_HEADERS_DROPPED = PREFIX + "truncated", PREFIX + "headers_dropped"
H_ORIGINAL_SIZE, H_ORIGINAL_SHA256 = PREFIX + "original_size", PREFIX + "original_sha256"
H_ORIGINAL_KEY_SIZE = PREFIX + "original_key_size"

# Kafka's framing of a record alone in its batch, generously: the batch header (61 bytes) and the log
# overhead (12), the record's varints and attributes (< 40); plus two varints per header (< 10)
RECORD_OVERHEAD = 512
HEADER_OVERHEAD = 10

Headers = list[tuple[str, bytes]]


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


def record_size(key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]]) -> int:
    """What a record takes on Kafka, at most: key, value, header names and values, and the framing."""
    return (
        RECORD_OVERHEAD
        + len(key or b"")
        + len(value or b"")
        + sum(HEADER_OVERHEAD + len(name.encode()) + len(header or b"") for name, header in headers)
    )


def fit_dead_letter(
    key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]], max_bytes: int
) -> tuple[bytes | None, bytes | None, Headers]:
    """The dead letter's record, unchanged if :func:`record_size` is within ``max_bytes``; else cut to fit.

    Cut, the value keeps what fits of its beginning and the headers say so: ``truncated`` (``true``),
    the original value's ``original_size`` (bytes) and ``original_sha256`` (hex). The original headers
    stay unless they leave no room beside ours: then they are dropped, and ``headers_dropped`` holds how
    many there were. A key that alone leaves no room is cut too (``original_key_size``). Raises
    ``ValueError`` only if our own headers cannot fit (a ``max_bytes`` far below the settings' minimum)."""
    headers = list(headers)
    if record_size(key, value, headers) <= max_bytes:
        return key, value, headers
    original = [(name, header) for name, header in headers if not name.startswith(PREFIX)]
    ours = [(name, header) for name, header in headers if name.startswith(PREFIX)]
    ours.append((H_TRUNCATED, b"true"))
    if value is not None:
        ours.append((H_ORIGINAL_SIZE, str(len(value)).encode()))
        ours.append((H_ORIGINAL_SHA256, hashlib.sha256(value).hexdigest().encode()))
    kept = [*original, *ours]
    if original and record_size(key, None, kept) > max_bytes:
        kept = [*ours, (H_HEADERS_DROPPED, str(len(original)).encode())]
    if key is not None and record_size(key, None, kept) > max_bytes:
        kept.append((H_ORIGINAL_KEY_SIZE, str(len(key)).encode()))
        key = key[: max(0, max_bytes - record_size(None, None, kept))]
    room = max_bytes - record_size(key, None, kept)
    if room < 0:
        raise ValueError(f"a dead letter's own headers need {max_bytes - room} bytes, over the limit of {max_bytes}")
    return key, value[:room] if value is not None else None, kept


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
    # a dead letter cut to fit: its value is the original's beginning, of this size and SHA-256
    truncated: bool = False
    original_size: int | None = None
    original_sha256: str | None = None

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
            "truncated": self.truncated,
            "original_size": self.original_size,
            "original_sha256": self.original_sha256,
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
        truncated=ours.get(H_TRUNCATED) == "true",
        original_size=int(ours[H_ORIGINAL_SIZE]) if H_ORIGINAL_SIZE in ours else None,
        original_sha256=ours.get(H_ORIGINAL_SHA256),
    )
