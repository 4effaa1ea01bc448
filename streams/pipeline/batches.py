"""The async side of a batch: run the pipeline off the event loop, retry what failed, publish results.

Order matters for the delivery promise: (1) the database transaction commits state with its dedup
records; (2) metrics count what is committed; (3) dead letters and stage transitions are on Kafka;
only then does the :class:`BatchWriter` ack the batch's events, so an offset is never committed for
unwritten or unpublished work.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any, Protocol, TypeVar

from streams.contract.dead_letters import dead_letter_headers, fit_dead_letter
from streams.contract.messages import DeadLetter
from streams.contract.transitions import transition_message
from streams.domain.journey import Transition
from streams.metrics.instruments import LifecycleMetrics
from streams.pipeline.runner import PipelineRunner, PlainMessage
from streams.pipeline.service import BatchResult

log = logging.getLogger(__name__)
T = TypeVar("T")


# key, value, headers
Record = tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]


class Publish(Protocol):
    """Hands records to Kafka; returns once Kafka has them all (in order per key)."""

    async def __call__(self, records: Sequence[Record]) -> None: ...


def raw_message(event: Any) -> PlainMessage:
    """A Faust event -> the pipeline's message, as the plain tuple that crosses to the pipeline process."""
    message = event.message
    headers = message.headers or []
    if isinstance(headers, dict):
        headers = list(headers.items())
    return message.topic, message.partition, message.offset, message.key, message.value, list(headers)


class BatchHandler:
    # kept parts of batches that no worker came back for (it died): gone after a day, long past any retry
    PARTS_KEPT_SECONDS = 86_400.0

    def __init__(
        self,
        runner: PipelineRunner,
        metrics: LifecycleMetrics,
        *,
        publish_dead_letters: Publish,
        publish_transitions: Publish,
        retry_max_seconds: float = 30.0,
        dead_letter_max_bytes: int = 1_000_000,
    ) -> None:
        self.runner = runner
        self.metrics = metrics
        # where the records go, by topic: the methods below decide what and when
        self._to_dead_letter_topic = publish_dead_letters
        self._to_lifecycle_topic = publish_transitions
        self.retry_max_seconds = retry_max_seconds
        # a dead letter larger than its topic accepts would be refused, and retried, forever: cut to fit
        self.dead_letter_max_bytes = dead_letter_max_bytes
        self._unmarked: list[str] = []  # transitions on Kafka, not yet recorded as published
        # batches are named uniquely among workers; a batch's name stays the same over its retries
        self._batch_ids = (f"{uuid.uuid4().hex[:16]}-{n}" for n in itertools.count())
        self._settled: list[str] = []  # batches whose results arrived: their kept parts can go

    async def write(self, events: Sequence[Any]) -> BatchResult:
        """The database step of a batch, counted in the metrics once committed. Never raises on input;
        waits out infrastructure faults. The transitions published since the last write are recorded as
        published in the same transaction."""
        started = time.perf_counter()
        messages = [raw_message(event) for event in events]
        published, self._unmarked = self._unmarked, []
        settled, self._settled = self._settled, []
        batch_id = next(self._batch_ids)
        attempts = itertools.count()
        result = await self._retry(
            "write batch to the database",
            # a retry may follow a commit whose reply was lost: it resumes from the batch's kept parts
            lambda: self.runner.process(
                messages, published, batch_id=batch_id, settled=settled, resume=next(attempts) > 0
            ),
        )
        self._settled.append(batch_id)
        committed = time.time()
        # counted as soon as committed, not after the previous batch's publishing: what /metrics shows is
        # the database's state, even while publishing waits out a broker outage
        self.metrics.record(result)
        self.metrics.record_write(
            len(events), time.perf_counter() - started, (committed - event.message.timestamp for event in events)
        )
        return result

    async def publish(self, result: BatchResult) -> None:
        """The Kafka step: dead letters and transitions go out."""
        started = time.perf_counter()
        await self._retry("publish dead letters", lambda: self._publish_dead_letters(result.dead_letters))
        await self.publish_transitions(result.transitions)
        self.metrics.batch_seconds.labels("publish").observe(time.perf_counter() - started)

    async def publish_transitions(self, transitions: Sequence[Transition]) -> None:
        """Should the worker die before a write records them, the next start publishes these
        transitions once more (at least once on the topic)."""
        if transitions:
            records: list[Record] = [(t.customer_id.encode(), transition_message(t), []) for t in transitions]
            await self._retry("publish stage transitions", lambda: self._to_lifecycle_topic(records))
            self._unmarked.extend(t.event_id for t in transitions)

    @property
    def has_unmarked(self) -> bool:
        """Transitions on Kafka not yet recorded as published."""
        return bool(self._unmarked)

    async def mark_published(self) -> None:
        """Records published transitions now, in a transaction of their own: for when no batch follows."""
        if self._unmarked or self._settled:
            published, self._unmarked = self._unmarked, []
            settled, self._settled = self._settled, []
            await self._retry("mark transitions published", lambda: self.runner.process((), published, settled=settled))

    async def forget_states(self) -> None:
        """At a rebalance: customers may move to another worker and back, so none is known any more."""
        await self._retry("forget the kept states", self.runner.forget_states)

    async def publish_outbox(self, page: int = 10_000) -> int:
        """Transitions committed but not yet published (the worker died in between): publish them now,
        a page at a time, however many there are."""
        total, after = 0, 0
        while True:
            pending = await self._retry(
                "read the outbox", functools.partial(self.runner.unpublished_transitions, after, page)
            )
            if not pending:
                return total
            await self.publish_transitions([transition for _, transition in pending])
            await self.mark_published()
            total, after = total + len(pending), pending[-1][0]

    async def prune(self, *, rounds: int = 100) -> int:
        """Retention: expired dedup records go, a short transaction at a time between batches, until none
        is left or ``rounds`` ran (the next call goes on). A failure waits for the next call."""
        total = 0
        for _ in range(rounds):
            try:
                deleted = await self.runner.prune(self.PARTS_KEPT_SECONDS)
            except Exception as exc:
                log.warning("pruning the dedup records failed (%s: %s); trying again later", type(exc).__name__, exc)
                break
            total += deleted
            if not deleted:
                break
        return total

    async def _publish_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        if not letters:
            return
        limit = self.dead_letter_max_bytes
        await self._to_dead_letter_topic(
            [fit_dead_letter(d.message.key, d.message.value, dead_letter_headers(d), limit) for d in letters]
        )
        for letter in letters:
            log.warning(
                "dead-lettered %s[%d]@%d: %s: %s",
                letter.message.topic,
                letter.message.partition,
                letter.message.offset,
                letter.error_class,
                letter.reason[:300],
            )

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


class BatchWriter:
    """Collecting and writing overlap: the agent keeps draining Kafka while a batch is being written.

    Collected events queue up, bounded by ``max_pending`` (beyond it the agent waits and Faust stops
    fetching: the backlog stays in Kafka). The writer takes everything queued, up to ``batch_max``
    events, as one transaction, so batches grow under load and stay small, hence fast, when it is
    light. Events are acked only after their batch is committed and published, so an offset is never
    committed for unwritten work; cancelled or crashed, the unacked events are simply redelivered.
    """

    STOP_MARK_SECONDS = 5.0

    def __init__(
        self,
        handler: BatchHandler,
        *,
        ack: Callable[[Any], Awaitable[Any]],
        batch_max: int,
        max_pending: int | None = None,
        mark_idle_after: float = 1.0,
    ) -> None:
        self.handler = handler
        self.ack = ack
        self.batch_max = batch_max
        self.max_pending = max_pending or 2 * batch_max
        self.mark_idle_after = mark_idle_after
        self._pending: deque[Any] = deque()
        self._changed = asyncio.Condition()
        self._writing = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._publishing: asyncio.Future[None] | None = None
        self._idle_mark: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    async def put(self, events: Sequence[Any]) -> None:
        """Queue collected events; waits while the writer is ``max_pending`` events behind."""
        if self._task is not None and self._task.done():
            self._task.result()  # the writer crashed: surface it in the agent, whose supervisor restarts it
        async with self._changed:
            await self._changed.wait_for(lambda: len(self._pending) < self.max_pending)
            self._pending.extend(events)
            self._changed.notify_all()

    async def run(self) -> None:
        """Two steps in flight: batch N is published and acked here while batch N+1 is written in the
        pipeline process. Publishing stays in batch order, so transitions and acks do too."""
        while True:
            async with self._changed:
                await self._changed.wait_for(lambda: bool(self._pending))
            async with self._writing:
                async with self._changed:
                    batch = [self._pending.popleft() for _ in range(min(self.batch_max, len(self._pending)))]
                    self._changed.notify_all()
                result = await self.handler.write(batch)
                await self._published()
                self._publishing = asyncio.ensure_future(self._publish_and_ack(batch, result))

    async def _publish_and_ack(self, batch: Sequence[Any], result: BatchResult) -> None:
        await self.handler.publish(result)
        for event in batch:
            await self.ack(event)
        if not self._pending and not self._writing.locked() and (self._idle_mark is None or self._idle_mark.done()):
            self._idle_mark = asyncio.ensure_future(self._mark_when_idle())

    async def _mark_when_idle(self) -> None:
        """The next batch records the marks in its transaction; only when none comes for
        ``mark_idle_after`` seconds do they get one of their own. Marking at once whenever the writer
        catches up would make a third of the pipeline's transactions under load. A stop marks
        at once, so that the next start does not publish the transitions again. A batch published while
        this mark is being written finds the writer locked and schedules no mark of its own: its marks
        are this one's next round (else they would wait for a next batch, forever at the end of a stream)."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.mark_idle_after)
            async with self._writing:
                await self.handler.mark_published()
            if self._pending or not self.handler.has_unmarked:
                return

    async def _published(self) -> None:
        """Waits for the batch being published; raises what it raised (a bug: the agent restarts)."""
        if self._publishing is not None:
            publishing, self._publishing = self._publishing, None
            await publishing

    async def on_partitions_revoked(self, revoked: Collection[Any]) -> None:
        """Queued events of revoked partitions go back to Kafka (unacked: their new owner gets them), and
        the batch being written finishes first, so two workers never write one customer at once. The
        pipeline's kept states are forgotten: what comes back after the rebalance may have moved on."""
        async with self._changed:
            kept = [event for event in self._pending if event.message.tp not in revoked]
            self._pending.clear()
            self._pending.extend(kept)
            self._changed.notify_all()
        async with self._writing:
            await self._published()
            if revoked:
                await self.handler.forget_states()

    async def __aenter__(self) -> BatchWriter:
        self._task = asyncio.ensure_future(self.run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stopping.set()
        for task in (self._task, self._publishing):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._idle_mark is not None:
            # bounded: a stop must not wait out a database outage (the next start publishes them again)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._idle_mark), self.STOP_MARK_SECONDS)
            self._idle_mark.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._idle_mark
