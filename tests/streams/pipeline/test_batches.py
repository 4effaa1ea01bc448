"""The outbox marks: they ride in the next batch's transaction, or get one of their own when idle."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
from prometheus_client import CollectorRegistry

from streams.contract.vocabulary import EVENT_TOPICS
from streams.db.repository import Repository
from streams.metrics.instruments import LifecycleMetrics
from streams.pipeline.batches import BatchHandler, BatchWriter
from streams.pipeline.runner import PipelineRunner, PlainMessage
from streams.pipeline.service import BatchResult, Pipeline
from tests.support import TOPICS, Recorder, event, messages_for, migrated

DEADLINE = 60.0  # the handler retries failures forever: a broken write would otherwise hang the test


class CountingRunner(PipelineRunner):
    """Counts the calls into the pipeline: each is a transaction."""

    calls = 0

    async def process(
        self, messages: Sequence[PlainMessage], published: Sequence[str] = (), **kwargs: Any
    ) -> BatchResult:
        self.calls += 1
        return await super().process(messages, published, **kwargs)


def faust_event(document: dict[str, Any], offset: int) -> Any:
    """What the writer reads of a Faust event: its message, on the topic of its type."""
    topic = EVENT_TOPICS[document["type"]]
    message = SimpleNamespace(
        topic=topic,
        partition=0,
        offset=offset,
        key=document["customer_id"].encode(),
        value=orjson.dumps(document),
        timestamp=time.time(),
        headers=[],
        tp=(topic, 0),
    )
    return SimpleNamespace(message=message)


def handler_on(
    tmp_path: Path, state_cache_customers: int = 0, runner_class: type[CountingRunner] = CountingRunner
) -> tuple[BatchHandler, Repository, CountingRunner]:
    engine = migrated(f"sqlite:///{tmp_path / 'batches.db'}")
    repository = Repository(engine, state_cache_customers=state_cache_customers)
    runner = runner_class.in_thread(Pipeline(repository, TOPICS))
    assert isinstance(runner, runner_class)
    metrics = LifecycleMetrics(CollectorRegistry())
    handler = BatchHandler(runner, metrics, publish_dead_letters=Recorder(), publish_transitions=Recorder())
    return handler, repository, runner


def test_published_transitions_are_marked_in_the_next_batch_transaction(tmp_path: Path) -> None:
    handler, repository, runner = handler_on(tmp_path)

    async def scenario() -> None:
        first = await handler.write([faust_event(event("lead.created", "c-1"), 0)])
        await handler.publish(first)
        assert len(repository.unpublished_transitions()) == 1  # on Kafka, not yet recorded
        second = await handler.write([faust_event(event("lead.created", "c-2"), 1)])
        assert [t.customer_id for _, t in repository.unpublished_transitions()] == ["c-2"]
        assert runner.calls == 2  # no transaction of its own for the mark
        await handler.publish(second)
        await handler.mark_published()
        assert repository.unpublished_transitions() == []
        assert runner.calls == 3

    asyncio.run(asyncio.wait_for(scenario(), DEADLINE))


class Acks:
    """The writer's ack: records the acked events."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    async def __call__(self, event: Any) -> None:
        self.events.append(event)

    async def until(self, count: int) -> None:
        """Waits for ``count`` acks, under the test's deadline: the writer runs beside the test."""
        while len(self.events) < count:
            await asyncio.sleep(0.01)


def test_idle_writer_marks_the_last_batch_on_its_own(tmp_path: Path) -> None:
    handler, repository, _ = handler_on(tmp_path)
    acks = Acks()

    async def scenario() -> None:
        async with BatchWriter(handler, ack=acks, batch_max=10) as writer:
            await writer.put([faust_event(event("lead.created", f"c-{n}"), n) for n in range(3)])
            for _ in range(500):  # a deadline, not a sleep: the writer runs beside this task
                if len(acks.events) == 3 and not repository.unpublished_transitions():
                    break
                await asyncio.sleep(0.01)
        assert len(acks.events) == 3
        assert repository.unpublished_transitions() == []

    asyncio.run(asyncio.wait_for(scenario(), DEADLINE))


def test_a_batch_within_the_idle_delay_carries_the_marks(tmp_path: Path) -> None:
    handler, repository, runner = handler_on(tmp_path)
    acks = Acks()

    async def scenario() -> None:
        async with BatchWriter(handler, ack=acks, batch_max=10, mark_idle_after=DEADLINE) as writer:
            await writer.put([faust_event(event("lead.created", "c-1"), 0)])
            await acks.until(1)
            await writer.put([faust_event(event("lead.created", "c-2"), 1)])
            await acks.until(2)
            # the second batch's transaction recorded the first's transition; no transaction of its own
            assert [t.customer_id for _, t in repository.unpublished_transitions()] == ["c-2"]
            assert runner.calls == 2

    asyncio.run(asyncio.wait_for(scenario(), DEADLINE / 2))


def test_a_stop_within_the_idle_delay_marks_at_once(tmp_path: Path) -> None:
    handler, repository, runner = handler_on(tmp_path)
    acks = Acks()

    async def scenario() -> None:
        async with BatchWriter(handler, ack=acks, batch_max=10, mark_idle_after=DEADLINE) as writer:
            await writer.put([faust_event(event("lead.created", "c-1"), 0)])
            await acks.until(1)
            assert len(repository.unpublished_transitions()) == 1
        # the next start would otherwise publish the transition again
        assert repository.unpublished_transitions() == []
        assert runner.calls == 2

    asyncio.run(asyncio.wait_for(scenario(), DEADLINE / 2))


class GatedMarks(CountingRunner):
    """Holds a call that only records marks until the test opens the gate."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.marking, self.gate = asyncio.Event(), asyncio.Event()

    async def process(
        self, messages: Sequence[PlainMessage], published: Sequence[str] = (), **kwargs: Any
    ) -> BatchResult:
        if not messages:
            self.marking.set()
            await self.gate.wait()
        return await super().process(messages, published, **kwargs)


def test_a_batch_published_while_the_idle_mark_is_written_is_marked_too(tmp_path: Path) -> None:
    """At the end of a stream, after a broker restart (tests/integration/test_faults.py): the last
    batch's publish ended while the idle mark held the writer, so it scheduled no mark, and its
    transitions stayed unmarked with no batch to come."""
    handler, repository, runner = handler_on(tmp_path, runner_class=GatedMarks)
    assert isinstance(runner, GatedMarks)
    writer = BatchWriter(handler, ack=Acks(), batch_max=10, mark_idle_after=0.0)

    async def scenario() -> None:
        first = await handler.write([faust_event(event("lead.created", "c-1"), 0)])
        last = await handler.write([faust_event(event("lead.created", "c-2"), 1)])
        await handler.publish(first)
        marking = asyncio.ensure_future(writer._mark_when_idle())
        await runner.marking.wait()  # the mark of c-1's transition is being written
        await handler.publish(last)
        runner.gate.set()
        await marking
        assert repository.unpublished_transitions() == []

    asyncio.run(asyncio.wait_for(scenario(), DEADLINE))


def test_a_rebalance_forgets_the_kept_states(tmp_path: Path) -> None:
    """While its partition was away, another worker moved the customer on: what comes back after the
    rebalance is read from the database, not from the states kept before it."""
    handler, repository, _ = handler_on(tmp_path, state_cache_customers=100)
    acks = Acks()
    other_worker = Pipeline(Repository(repository.engine), TOPICS)

    async def scenario() -> None:
        async with BatchWriter(handler, ack=acks, batch_max=10) as writer:
            await writer.put([faust_event(event("lead.created", "c-1"), 0)])
            await acks.until(1)
            assert len(repository.cache) == 1
            await writer.on_partitions_revoked(set())  # nothing of ours moved: the kept states stay
            assert len(repository.cache) == 1
            await writer.on_partitions_revoked({("leads", 0)})
            assert len(repository.cache) == 0
        other_worker.process(messages_for([event("deal.opened", "c-1")]))
        won = await handler.write([faust_event(event("deal.won", "c-1"), 1)])
        assert [(t.from_stage, t.to_stage) for t in won.transitions] == [("opportunity", "customer")]

    asyncio.run(asyncio.wait_for(scenario(), DEADLINE / 2))


def test_the_outbox_is_published_a_page_at_a_time_however_long(tmp_path: Path) -> None:
    """The replay at start read at most 10,000 transitions: a longer backlog stayed unpublished."""
    handler, repository, _ = handler_on(tmp_path)
    Pipeline(repository, TOPICS).process(messages_for([event("lead.created", f"c-{n}") for n in range(25)]))
    assert len(repository.unpublished_transitions()) == 25
    published = handler._to_lifecycle_topic
    assert isinstance(published, Recorder)

    async def scenario() -> None:
        assert await handler.publish_outbox(page=10) == 25

    asyncio.run(asyncio.wait_for(scenario(), DEADLINE))
    assert len(published.sent) == 25
    assert repository.unpublished_transitions() == []
