"""The ingest agent without a broker: Faust's ``agent.test_context()`` feeds it messages."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import faust
import orjson
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import select
from sqlalchemy.orm import Session

from agents.ingest import register_ingest
from streams.db.engine import make_engine
from streams.db.migrations import upgrade
from streams.db.models import Customer
from streams.db.repository import Repository
from streams.kafka.transport import RawBytes
from streams.metrics.instruments import LifecycleMetrics
from streams.pipeline.batches import BatchHandler
from streams.pipeline.runner import PipelineRunner
from streams.pipeline.service import Pipeline
from tests.support import Recorder, event


@pytest.fixture
def app() -> Iterator[faust.App]:
    yield faust.App("test-ingest", key_serializer="raw", value_serializer="raw", store="memory://")


def test_agent_hands_batches_to_the_handler_and_never_dies_on_input(app: faust.App, tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'agent.db'}")
    upgrade(engine)
    repository = Repository(engine)
    topics = {"leads": "leads", "deals": "deals", "tickets": "tickets"}
    dead, transitions = Recorder(), Recorder()
    handler = BatchHandler(
        PipelineRunner.in_thread(Pipeline(repository, topics)),
        LifecycleMetrics(CollectorRegistry()),
        publish_dead_letters=dead,
        publish_transitions=transitions,
    )
    source = app.topic("leads", schema=RawBytes())
    agent = register_ingest(app, source, handler, batch_max=10, batch_within=0.01)

    async def scenario() -> None:
        async with agent.test_context() as test_agent:
            await test_agent.put(b"{broken", key=b"c-9")
            await test_agent.put(orjson.dumps(event("lead.created", customer_id="c-1")), key=b"c-1")
            await test_agent.put(orjson.dumps(event("deal.won", customer_id="c-1")), key=b"c-1")  # wrong topic
            for _ in range(500):  # a deadline, not a sleep: the writer runs beside the agent
                if len(dead.sent) == 2 and transitions.sent:
                    break
                await asyncio.sleep(0.01)

    asyncio.run(scenario())
    assert [d["headers"]["lifecycle.errors.class"] for d in dead.sent] == [b"not_json", b"wrong_topic"]
    assert dead.sent[0]["value"] == b"{broken"  # original bytes, untouched
    assert [orjson.loads(t["value"])["to"] for t in transitions.sent] == ["lead"]
    with Session(engine) as session:
        assert session.scalars(select(Customer.stage)).all() == ["lead"]
