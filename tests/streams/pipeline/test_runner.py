"""The pipeline process: batches in over its socket, results and errors back, a death survived."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from streams.db.engine import make_engine
from streams.db.migrations import upgrade
from streams.db.models import Customer
from streams.db.repository import Repository
from streams.domain.errors import PipelineProcessDied
from streams.pipeline.runner import PipelineRunner
from streams.pipeline.service import Pipeline, PipelineConfig
from tests.support import ROOT, TOPICS, event, messages_for

T = TypeVar("T")


def pipeline_children() -> list[BaseProcess]:
    return [child for child in multiprocessing.active_children() if child.name == "lifecycle-pipeline"]


async def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def run(scenario: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(scenario())


@pytest.fixture
def config(tmp_path: Path) -> PipelineConfig:
    url = f"sqlite:///{tmp_path / 'runner.db'}"
    upgrade(make_engine(url))
    return PipelineConfig(url, TOPICS, 3.0, 65536)


@contextlib.asynccontextmanager
async def serving_child(config: PipelineConfig) -> AsyncIterator[tuple[PipelineRunner, BaseProcess]]:
    """A process runner whose child has served one batch (customer c-1): the runner and that child."""
    runner = PipelineRunner.in_process(config)
    try:
        await runner.process(messages_for([event("lead.created", "c-1")]))
        [child] = pipeline_children()
        yield runner, child
    finally:
        runner.close()


def customers(config: PipelineConfig) -> int:
    with Session(make_engine(config.database_url)) as session:
        return session.scalar(select(func.count()).select_from(Customer)) or 0


def test_batch_round_trip_and_marks_in_the_same_call(config: PipelineConfig) -> None:
    async def scenario() -> None:
        runner = PipelineRunner.in_process(config)
        try:
            result = await runner.process(messages_for([event("lead.created", "c-1"), event("lead.qualified", "c-1")]))
            assert [t.to_stage for t in result.transitions] == ["lead", "qualified"]
            assert [t.event_id for _, t in await runner.unpublished_transitions()] == [
                t.event_id for t in result.transitions
            ]
            second = await runner.process(
                messages_for([event("lead.created", "c-2")]), [t.event_id for t in result.transitions]
            )
            # the first batch's transitions were marked published in the second batch's transaction
            assert [t for _, t in await runner.unpublished_transitions()] == second.transitions
        finally:
            runner.close()

    run(scenario)
    assert customers(config) == 2


def test_an_error_in_the_child_reaches_the_caller_and_the_child_serves_on(tmp_path: Path) -> None:
    missing_tables = PipelineConfig(f"sqlite:///{tmp_path / 'empty.db'}", TOPICS, 3.0, 65536)

    async def scenario() -> None:
        runner = PipelineRunner.in_process(missing_tables)
        try:
            with pytest.raises(Exception, match="no such table"):
                await runner.unpublished_transitions()
            [child] = pipeline_children()
            upgrade(make_engine(missing_tables.database_url))
            assert await runner.unpublished_transitions() == []
            assert pipeline_children() == [child]  # the same process: an error is not a death
        finally:
            runner.close()

    run(scenario)


def test_a_killed_child_fails_the_call_and_the_next_call_starts_a_new_one(config: PipelineConfig) -> None:
    async def scenario() -> None:
        async with serving_child(config) as (runner, child):
            assert child.pid is not None
            os.kill(child.pid, signal.SIGKILL)
            with pytest.raises(PipelineProcessDied):
                await runner.process(messages_for([event("lead.created", "c-2")]))
            result = await runner.process(messages_for([event("lead.created", "c-3")]))
            assert [t.customer_id for t in result.transitions] == ["c-3"]
            [successor] = pipeline_children()
            assert successor.pid != child.pid

    run(scenario)
    assert customers(config) == 2


def test_cancelled_call_retires_the_child_which_then_exits(config: PipelineConfig) -> None:
    async def scenario() -> None:
        async with serving_child(config) as (runner, child):
            call = asyncio.ensure_future(runner.process(messages_for([event("lead.created", "c-2")])))
            await asyncio.sleep(0)  # the request is on its way
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
            await wait_until(lambda: not child.is_alive(), "the retired child to exit")
            result = await runner.process(messages_for([event("lead.created", "c-3")]))
            assert [t.customer_id for t in result.transitions] == ["c-3"]
        await wait_until(lambda: not pipeline_children(), "the child to exit once the runner is closed")

    run(scenario)


def test_thread_runner_is_the_same_interface(config: PipelineConfig) -> None:
    async def scenario() -> None:
        repository = Repository(make_engine(config.database_url))
        runner = PipelineRunner.in_thread(Pipeline(repository, TOPICS))
        try:
            result = await runner.process(messages_for([event("lead.created", "c-1")]))
            await runner.process([], [t.event_id for t in result.transitions])
            assert await runner.unpublished_transitions() == []
        finally:
            runner.close()

    run(scenario)


def test_a_worker_that_exits_without_closing_does_not_wait_for_its_child(config: PipelineConfig) -> None:
    """multiprocessing joins its children at exit; the child must have seen the connection end by then."""
    script = f"""
import asyncio
from streams.pipeline.service import PipelineConfig
from streams.pipeline.runner import PipelineRunner
from tests.support import TOPICS, messages_for
from tests.support import event

async def main() -> None:
    runner = PipelineRunner.in_process(PipelineConfig({config.database_url!r}, TOPICS, 3.0, 65536))
    await runner.process(messages_for([event("lead.created", "c-1")]))

asyncio.run(main())
"""
    finished = subprocess.run([sys.executable, "-c", script], cwd=ROOT, timeout=60, capture_output=True)
    assert finished.returncode == 0, finished.stderr.decode()[-2000:]
    assert customers(config) == 1
