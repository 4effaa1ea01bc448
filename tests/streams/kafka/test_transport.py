"""Our Faust consumer (``streams.kafka.transport``) without a broker: hand-over, flow stop, fetch wait."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator, Iterator
from importlib.metadata import version
from types import SimpleNamespace

import aiokafka
import faust
import pytest
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, Message
from prometheus_client import CollectorRegistry

from streams.app import faust_worker, use_lean_faust
from streams.kafka.transport import Consumer, Transport

LEADS = TP("leads", 0)


def message(offset: int) -> Message:
    return Message("leads", 0, offset, 0.0, 0, [], b"k", b"v", None, tp=LEADS)


@pytest.fixture
def app() -> Iterator[faust.App]:
    app = faust.App("test-transport", broker="kafka://127.0.0.1:1", autodiscover=False)
    use_lean_faust(app, CollectorRegistry(), fetch_max_wait_ms=77, fetch_min_bytes=4321)
    yield app


def test_the_overridden_faust_and_aiokafka_code_is_the_reviewed_version() -> None:
    """An upgrade must be re-reviewed: the overrides replace private code of these exact versions."""
    assert version("faust-streaming") == "0.15.3"
    assert version("aiokafka") == "0.14.0"
    assert "fetch_max_wait_ms=1500" in inspect.getsource(faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer)
    start = inspect.getsource(aiokafka.AIOKafkaConsumer.start)
    assert "fetch_max_wait_ms=self._fetch_max_wait_ms" in start and "fetch_min_bytes=self._fetch_min_bytes" in start
    drain = inspect.getsource(faust_consumer.Consumer._drain_messages)
    assert "await self.wait_first(\n" in drain and "callback(message), self.suspend_flow.wait()" in drain


def test_the_fetch_settings_reach_aiokafka(app: faust.App) -> None:
    async def created() -> aiokafka.AIOKafkaConsumer:
        consumer = app.consumer
        assert isinstance(consumer, Consumer) and isinstance(app.transport, Transport)
        return consumer._thread._create_worker_consumer(app.transport)

    kafka_consumer = asyncio.run(created())
    assert kafka_consumer._fetch_max_wait_ms == 77
    assert kafka_consumer._fetch_min_bytes == 4321


def test_hand_over_keeps_order_skips_what_was_handed_over_and_records_gaps(
    app: faust.App, monkeypatch: pytest.MonkeyPatch
) -> None:
    delivered: list[int] = []
    gaps: list[tuple[TP, int, int]] = []

    async def run() -> Consumer:
        consumer = app.consumer
        assert isinstance(consumer, Consumer)

        async def callback(message: Message) -> None:
            delivered.append(message.offset)

        async def add_gap(tp: TP, start: int, end: int) -> None:
            gaps.append((tp, start, end))

        consumer.callback = callback
        monkeypatch.setattr(consumer, "_add_gap", add_gap)
        monkeypatch.setattr(app.topics, "acks_enabled_for", lambda topic: True)
        consumer._read_offset[LEADS] = 5
        await consumer._hand_over([(LEADS, message(offset)) for offset in (3, 5, 6, 9)])
        return consumer

    consumer = asyncio.run(run())
    assert delivered == [5, 6, 9]  # 3 is behind the read offset: handed over before
    assert gaps == [(LEADS, 7, 9)]  # 7 and 8 never came: counted as acked, as Faust does
    assert consumer._read_offset[LEADS] == 9


def test_a_stopped_flow_interrupts_a_hand_over_blocked_on_a_full_buffer(app: faust.App) -> None:
    """A rebalance stops the flow while the agent's buffer is full: the fetch loop must not hang on it,
    and what was not handed over must not count as read (it is fetched again after the rebalance)."""
    delivered: list[int] = []

    async def run() -> Consumer:
        consumer = app.consumer
        assert isinstance(consumer, Consumer)
        fetcher = SimpleNamespace(_stopped=asyncio.Event())
        blocked = asyncio.Event()
        fetches = [[(LEADS, message(offset)) for offset in (0, 1, 2)]]

        async def getmany(timeout: float) -> AsyncIterator[tuple[TP, Message]]:
            if not fetches:
                fetcher._stopped.set()
            for pair in fetches.pop() if fetches else []:
                yield pair

        async def callback(message: Message) -> None:
            delivered.append(message.offset)
            if message.offset == 1:
                blocked.set()
                await asyncio.Event().wait()  # a full stream buffer that never drains

        consumer.callback = callback
        consumer.getmany = getmany  # type: ignore[method-assign, assignment]
        draining = asyncio.ensure_future(consumer._drain_messages(fetcher))
        await asyncio.wait_for(blocked.wait(), 10)
        consumer.stop_flow()
        await asyncio.wait_for(draining, 10)
        return consumer

    consumer = asyncio.run(run())
    assert delivered == [0, 1]
    assert consumer._read_offset[LEADS] == 0


def test_the_worker_keeps_the_log_level_it_was_given(app: faust.App) -> None:
    """Faust's spinner would set the root logger to DEBUG: every library's debug line built and handled."""
    root = logging.getLogger()
    saved = root.level, list(root.handlers)
    worker = faust_worker(app, "warning")
    try:
        worker._setup_logging()
        assert root.level == logging.WARNING
        assert not logging.getLogger("aiokafka").isEnabledFor(logging.DEBUG)
    finally:
        root.setLevel(saved[0])
        root.handlers[:] = saved[1]
