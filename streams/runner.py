"""Where the blocking, CPU-bound side of a batch runs: a process of its own (the default) or a thread.

Faust's consumer and the pipeline are both CPU-bound Python. In one process the GIL makes them take
turns on one core; with the pipeline in a second process, Faust keeps fetching and collecting the
next events while a batch is decoded, applied and committed on the other core (README, Performance).

The child holds nothing that is not also in the database: it loads what a batch touches, commits and
returns the :class:`BatchResult`. It dies with the worker (``PR_SET_PDEATHSIG``), so a killed worker
never leaves it behind; a batch it was writing then rolls back and is redelivered.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import multiprocessing
import os
import signal
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, TypeVar

from streams.db.engine import make_engine
from streams.db.repository import Repository
from streams.domain.journey import Observation, Outcome, Transition
from streams.pipeline import BatchResult, DeadLetter, Pipeline, RawMessage

log = logging.getLogger(__name__)
PR_SET_PDEATHSIG = 1
T = TypeVar("T")


@dataclass(frozen=True)
class PipelineConfig:
    """What it takes to build a :class:`Pipeline`: plain values, so a child process can build its own."""

    database_url: str
    source_topics: Mapping[str, str]
    at_risk_threshold: float
    max_message_bytes: int

    def build(self) -> Pipeline:
        repository = Repository(make_engine(self.database_url), at_risk_threshold=self.at_risk_threshold)
        return Pipeline(repository, self.source_topics, max_message_bytes=self.max_message_bytes)


# --- what runs on the executor's side (in the child, its own pipeline) ---------------------------
_pipeline: Pipeline | None = None


def _start_child(config: PipelineConfig, parent: int) -> None:
    prctl = getattr(ctypes.CDLL(None, use_errno=True), "prctl", None)  # Linux only
    if prctl is not None and prctl(PR_SET_PDEATHSIG, signal.SIGKILL) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:  # the worker died before prctl took effect
        os._exit(1)
    # Ctrl-C and a group-wide SIGTERM reach the child too: the worker decides when a batch is abandoned,
    # and the child ends when the worker shuts it down or dies
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    global _pipeline
    _pipeline = config.build()


# What crosses the process boundary travels as plain tuples: pickle handles a tuple in a fraction of
# the time it needs for an instance of a class (NamedTuple or dataclass), and it does so per event.
PlainMessage = tuple[str, int, int, bytes | None, bytes | None, Sequence[tuple[str, bytes]]]
PlainResult = tuple[
    list[DeadLetter], list[Transition], list[tuple[str, tuple[str, ...], float]], list[tuple[str, str, Outcome]]
]


def _process(pipeline: Pipeline | None, messages: Sequence[PlainMessage]) -> PlainResult:
    result = _resolve(pipeline).process([RawMessage._make(message) for message in messages])
    observations: list[tuple[str, tuple[str, ...], float]] = [tuple(o) for o in result.observations]  # type: ignore[misc]
    return result.dead_letters, result.transitions, observations, result.outcomes


def _mark_published(pipeline: Pipeline | None, event_ids: Sequence[str]) -> None:
    _resolve(pipeline).repository.mark_published(event_ids)


def _unpublished(pipeline: Pipeline | None) -> list[Transition]:
    return [transition for _, transition in _resolve(pipeline).repository.unpublished_transitions()]


def _resolve(pipeline: Pipeline | None) -> Pipeline:
    """The thread runner passes its own pipeline; in the child it is None and the child's is used."""
    if pipeline is not None:
        return pipeline
    assert _pipeline is not None, "the pipeline process was not initialised"
    return _pipeline


# --- the worker's side ---------------------------------------------------------------------------
class PipelineRunner:
    """Runs the pipeline's blocking calls one at a time on an executor: batches never overlap, so two
    batches never read and write the same customer at once."""

    def __init__(self, start: Callable[[], Executor], pipeline: Pipeline | None = None) -> None:
        self._start = start
        self._pipeline = pipeline  # None: the executor's process holds its own
        self._executor: Executor | None = None

    @classmethod
    def in_process(cls, config: PipelineConfig) -> PipelineRunner:
        """The default: a child process (spawned: a fork would copy Faust's threads and sockets)."""
        return cls(
            lambda: ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_child,
                initargs=(config, os.getpid()),
            )
        )

    @classmethod
    def in_thread(cls, pipeline: Pipeline) -> PipelineRunner:
        """A worker thread: for tests, tools and one-core machines."""
        return cls(lambda: ThreadPoolExecutor(max_workers=1), pipeline)

    async def process(self, messages: Sequence[RawMessage]) -> BatchResult:
        plain = [tuple(message) for message in messages]
        dead_letters, transitions, observations, outcomes = await self._run(_process, plain)
        return BatchResult(dead_letters, transitions, [Observation._make(o) for o in observations], outcomes)

    async def mark_published(self, event_ids: Sequence[str]) -> None:
        await self._run(_mark_published, list(event_ids))

    async def unpublished_transitions(self) -> list[Transition]:
        return await self._run(_unpublished)

    async def _run(self, function: Callable[..., T], *args: Any) -> T:
        """Raises what the call raised; the caller's retry loop handles it."""
        if self._executor is None:
            self._executor = self._start()
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, function, self._pipeline, *args)
        except BrokenProcessPool:
            log.error("the pipeline process died; a new one starts with the next attempt")
            self.close()
            raise

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
