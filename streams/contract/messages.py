"""Kafka messages as the pipeline sees them: plain values, so they cross to the pipeline process cheaply."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from streams.domain.errors import ErrorClass


class RawMessage(NamedTuple):
    """Crosses to the pipeline process as a plain tuple (``streams.pipeline.runner``)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]] = ()


# no __slots__ on what crosses the process boundary: a slotted dataclass pickles through fields(), slowly
@dataclass(frozen=True)
class DeadLetter:
    message: RawMessage
    error_class: ErrorClass
    reason: str
