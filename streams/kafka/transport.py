"""Faust's aiokafka transport with three costs taken out of the consumer (docs/performance.md).

**Hand-over per fetch, not per message.** Faust's consumer hands every fetched message to the
agents inside ``Service.wait_first(callback, suspend_flow)``: four tasks and an ``asyncio.wait`` per
message, so that a rebalance (``stop_flow``) can interrupt a hand-over stuck on a full stream buffer.
That wait is half of what a bare Faust agent spends per event. Here one such wait covers the
whole fetched batch: the same interruption point and the same offset bookkeeping, paid once per
fetch (``bench/run.py``, the two framework rows, shows the difference).

**Fetch size and wait.** Faust hard-codes aiokafka's ``fetch_max_wait_ms=1500`` and leaves
``fetch_min_bytes`` at 1. aiokafka leaves partitions that still hold buffered records out of the
fetch in flight, so a partition drained meanwhile can wait the max wait for its next records at light
load: the end-to-end latency. And with one byte the broker answers as soon as anything arrived: under
load, hundreds of small fetches a second, each costing the broker and the consumer thread. Both are
settings here (``LIFECYCLE_KAFKA_FETCH_MIN_BYTES``, ``LIFECYCLE_KAFKA_FETCH_MAX_WAIT_MS``).

Both override private methods of faust-streaming 0.15.3 and two attributes of aiokafka 0.14.0, the
pinned versions; ``tests/streams/kafka/test_transport.py`` fails when an upgrade changes what they replace.

**Bytes as they are.** Even the ``raw`` serializer sends each key and value through Faust's codec
registry (9 % of the worker's main thread): :class:`RawBytes`, a Faust ``Schema``
through its public ``loads_key``/``loads_value`` hooks, hands them over untouched.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, ClassVar

import aiokafka
import faust
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, Message

YIELD_EVERY = 100  # messages handed over before the event loop gets a turn, as Faust's own loop does


class RawBytes(faust.Schema[bytes | None, bytes | None]):
    """Keys and values as the broker sent them: the pipeline decodes and validates them itself."""

    def loads_key(self, app: Any, message: Message, **_: Any) -> Any:
        return message.key

    def loads_value(self, app: Any, message: Message, **_: Any) -> Any:
        return message.value


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # read by AIOKafkaConsumer.start() when it builds its fetcher, so setting it before start suffices
        consumer._fetch_max_wait_ms = transport.fetch_max_wait_ms
        consumer._fetch_min_bytes = transport.fetch_min_bytes
        return consumer


class Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _drain_messages(self, fetcher: Any) -> None:
        """Faust's fetch loop, with :meth:`_hand_over` under one ``wait_first`` per fetched batch."""
        consumer_stopped, fetcher_stopped = self._stopped.is_set, fetcher._stopped.is_set
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                self.diag.set_flag(CONSUMER_FETCHING)
                # getmany stops yielding as soon as the flow stops or the generation changes
                fetched = [pair async for pair in self.getmany(timeout=1.0)]
                await asyncio.sleep(0)  # getmany may return at once, again and again
                if fetched and not self.should_stop:
                    if self._commit_every is not None and self._n_acked >= self._commit_every:
                        self._n_acked = 0
                        await self.commit()
                    # a stopped flow cancels the hand-over: what was not handed over is fetched again
                    # from the committed offset once the rebalance is done, exactly as in Faust
                    await self.wait_first(self._hand_over(fetched), self.suspend_flow.wait())
                self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if not self.transport.app.should_stop:
                raise
            self.log.info("Broker stopped consumer, shutting down...")
        except asyncio.CancelledError:
            if not self.transport.app.should_stop:
                raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)

    async def _hand_over(self, fetched: Sequence[tuple[TP, Message]]) -> None:
        callback, read_offset = self.callback, self._read_offset
        acks_enabled_for = self.app.topics.acks_enabled_for
        for count, (tp, message) in enumerate(fetched, 1):
            if count % YIELD_EVERY == 0:
                await asyncio.sleep(0)
            offset, last = message.offset, read_offset[tp]
            if last is not None and offset < last:
                continue  # fetched before a seek back: handed over already
            if last and offset - last > 1 and acks_enabled_for(message.topic):
                # offsets the broker skipped (compaction, transaction markers) count as acked
                await self._add_gap(tp, last + 1, offset)
            await callback(message)
            read_offset[tp] = offset


class Transport(faust_aiokafka.Transport):
    Consumer: ClassVar[type[Consumer]] = Consumer  # type: ignore[assignment]

    def __init__(self, *args: Any, fetch_max_wait_ms: int = 1500, fetch_min_bytes: int = 1, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.fetch_min_bytes = fetch_min_bytes
