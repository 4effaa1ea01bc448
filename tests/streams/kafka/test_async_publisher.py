"""One acknowledgement for a request's many deliveries: when it is done, what it fails with, and that a
timeout on it leaves the deliveries alone (aiokafka still finishes them)."""

from __future__ import annotations

import asyncio
import gc

import pytest
from aiokafka.errors import KafkaError, KafkaTimeoutError

from streams.kafka.async_publisher import Delivery, acknowledgement


def deliveries(count: int) -> list[Delivery]:
    loop = asyncio.get_running_loop()
    return [loop.create_future() for _ in range(count)]


async def settled_soon(future: asyncio.Future[None]) -> bool:
    """Whether ``future`` is done once the callbacks already due have run (done callbacks are scheduled)."""
    for _ in range(3):
        await asyncio.sleep(0)  # yields to the loop's due callbacks; waits for no event
    return future.done()


def test_it_is_done_once_every_delivery_is() -> None:
    async def scenario() -> None:
        pending = deliveries(3)
        together = acknowledgement(pending)
        pending[2].set_result("metadata")
        pending[0].set_result("metadata")
        assert not await settled_soon(together)
        pending[1].set_result("metadata")
        assert await settled_soon(together)
        assert together.result() is None

    asyncio.run(scenario())


def test_it_fails_with_the_first_failure_without_waiting_for_the_rest() -> None:
    async def scenario() -> None:
        pending = deliveries(3)
        together = acknowledgement(pending)
        pending[1].set_exception(KafkaTimeoutError())
        assert await settled_soon(together)
        with pytest.raises(KafkaTimeoutError):
            together.result()
        unretrieved: list[dict[str, object]] = []
        asyncio.get_running_loop().set_exception_handler(lambda _loop, context: unretrieved.append(context))
        pending[0].set_exception(KafkaError("later"))  # a second failure changes nothing
        pending[2].set_result("metadata")
        assert await settled_soon(together)
        del pending
        gc.collect()
        assert unretrieved == []  # a failure after the first is retrieved all the same: asyncio logs no other

    asyncio.run(scenario())


def test_a_cancelled_delivery_is_a_failure() -> None:
    async def scenario() -> None:
        pending = deliveries(2)
        together = acknowledgement(pending)
        pending[0].cancel()
        assert await settled_soon(together)
        with pytest.raises(KafkaError):
            together.result()

    asyncio.run(scenario())


def test_no_delivery_is_acknowledged_at_once() -> None:
    async def scenario() -> None:
        assert acknowledgement([]).done()

    asyncio.run(scenario())


def test_a_timeout_on_it_cancels_none_of_the_deliveries() -> None:
    async def scenario() -> None:
        pending = deliveries(2)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0):
                await acknowledgement(pending)
        assert not any(delivery.cancelled() for delivery in pending)

    asyncio.run(scenario())
