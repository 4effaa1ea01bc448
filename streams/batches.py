"""The async side of a batch: run the pipeline off the event loop, retry what failed, publish results.

Order matters for the delivery promise: (1) the database transaction commits state with its dedup
records; (2) dead letters and stage transitions are on Kafka; (3) metrics count; only then does the
agent's ``take_events`` ack the batch, so an offset is never committed for unwritten work.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

import orjson

from streams.contract import format_timestamp
from streams.db.repository import Repository
from streams.dead_letters import dead_letter_headers
from streams.domain.journey import Transition
from streams.metrics import LifecycleMetrics
from streams.pipeline import BatchResult, DeadLetter, Pipeline, RawMessage

log = logging.getLogger(__name__)
T = TypeVar("T")


class Send(Protocol):
    """Sends one message and returns an awaitable that resolves once Kafka has it."""

    def __call__(
        self, *, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]
    ) -> Awaitable[Any]: ...


def transition_message(transition: Transition) -> bytes:
    return orjson.dumps(
        {
            "customer_id": transition.customer_id,
            "from": transition.from_stage.value if transition.from_stage else None,
            "to": transition.to_stage.value,
            "occurred_at": format_timestamp(transition.occurred_at),
            "event_id": transition.event_id,
        }
    )


def raw_message(event: Any) -> RawMessage:
    """A Faust event (raw serializers) -> the pipeline's plain message."""
    message = event.message
    headers = message.headers or []
    if isinstance(headers, dict):
        headers = list(headers.items())
    return RawMessage(message.topic, message.partition, message.offset, message.key, message.value, list(headers))


class BatchHandler:
    def __init__(
        self,
        pipeline: Pipeline,
        repository: Repository,
        metrics: LifecycleMetrics,
        *,
        send_dead_letter: Send,
        send_transition: Send,
        retry_max_seconds: float = 30.0,
    ) -> None:
        self.pipeline = pipeline
        self.repository = repository
        self.metrics = metrics
        self.send_dead_letter = send_dead_letter
        self.send_transition = send_transition
        self.retry_max_seconds = retry_max_seconds

    async def handle(self, events: Sequence[Any]) -> BatchResult:
        """Never raises on input; waits out infrastructure faults. Cancelled: the batch stays unacked."""
        try:
            result = await self.handle_messages([raw_message(event) for event in events])
        except BaseException:
            # take_events acks its buffer in a ``finally``; marking the messages acked here makes that a
            # no-op, so an interrupted batch is never committed and is redelivered after restart.
            for event in events:
                event.message.acked = True
            raise
        return result

    async def handle_messages(self, messages: Sequence[RawMessage]) -> BatchResult:
        result = await self._retry(
            "write batch to the database", lambda: asyncio.to_thread(self.pipeline.process, messages)
        )
        await self._retry("publish dead letters", lambda: self._publish_dead_letters(result.dead_letters))
        await self.publish_transitions(result.transitions)
        self.metrics.record(result)
        return result

    async def publish_transitions(self, transitions: Sequence[Transition]) -> None:
        if not transitions:
            return
        await self._retry("publish stage transitions", lambda: self._send_all(self.send_transition, transitions))
        ids = [t.event_id for t in transitions]
        await self._retry("mark transitions published", lambda: asyncio.to_thread(self.repository.mark_published, ids))

    async def publish_outbox(self) -> int:
        """Transitions committed but not yet published (the worker died in between): publish them now."""
        pending = await asyncio.to_thread(self.repository.unpublished_transitions)
        await self.publish_transitions([t for _, t in pending])
        return len(pending)

    async def _publish_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        waits = [
            self.send_dead_letter(key=d.message.key, value=d.message.value, headers=dead_letter_headers(d))
            for d in letters
        ]
        for letter in letters:
            log.warning(
                "dead-lettered %s[%d]@%d: %s: %s",
                letter.message.topic,
                letter.message.partition,
                letter.message.offset,
                letter.error_class,
                letter.reason[:300],
            )
        await asyncio.gather(*waits)

    async def _send_all(self, send: Send, transitions: Sequence[Transition]) -> None:
        waits = [send(key=t.customer_id.encode(), value=transition_message(t), headers=[]) for t in transitions]
        await asyncio.gather(*waits)

    async def _retry(self, what: str, attempt: Callable[[], Awaitable[T]]) -> T:
        """Exponential back-off, capped, forever: infrastructure faults are waited out, not skipped."""
        delay = 0.1
        while True:
            try:
                return await attempt()
            except Exception as exc:
                log.error("%s failed (%s: %s); retrying in %.1fs", what, type(exc).__name__, str(exc)[:300], delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max_seconds)
