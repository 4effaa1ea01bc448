"""Where the blocking, CPU-bound side of a batch runs: a process of its own (the default) or a thread.

Faust's consumer and the pipeline are both CPU-bound Python. In one process the GIL makes them take
turns on one core; with the pipeline in a second process, Faust keeps fetching and collecting the
next events while a batch is decoded, applied and committed on the other core (docs/performance.md).

The child holds nothing that is not also in the database: it loads what a batch touches, commits and
returns the :class:`BatchResult`. It dies with the worker (``PR_SET_PDEATHSIG``), so a killed worker
never leaves it behind; a batch it was writing then rolls back and is redelivered.

The worker talks to the child over a socket pair read by its own event loop, not through a
``ProcessPoolExecutor``: the executor's feeder and result threads need the worker's GIL, which Faust's
consumer holds most of the time; waiting for it adds 5-20 ms to every call (on the way to the child
and on the way back), a latency paid by every batch.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import gc
import logging
import multiprocessing
import os
import pickle
import signal
import socket
import struct
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any, Protocol, TypeVar

from streams.contract.messages import RawMessage
from streams.db.engine import WalCheckpoints
from streams.domain.errors import PipelineProcessDied
from streams.domain.journey import Transition
from streams.pipeline.service import BatchResult, Pipeline, PipelineConfig

log = logging.getLogger(__name__)
PR_SET_PDEATHSIG = 1
T = TypeVar("T")


# --- the calls, run next to a pipeline (in the child, or in the worker's thread) --------------------
# What crosses the process boundary travels as plain tuples: pickle handles a tuple in a fraction of
# the time it needs for an instance of a class (NamedTuple or dataclass), and it does so per event.
# (A BatchResult crosses as it is: its per-event parts, the observations, are tallied into plain values.)
PlainMessage = tuple[str, int, int, bytes | None, bytes | None, Sequence[tuple[str, bytes]]]


def _process(
    pipeline: Pipeline,
    messages: Sequence[PlainMessage],
    published: Sequence[str],
    batch_id: str | None,
    settled: Sequence[str],
    resume: bool = False,
) -> BatchResult:
    return pipeline.process(
        [RawMessage._make(message) for message in messages],
        published=published,
        batch_id=batch_id,
        settled=settled,
        resume=resume,
    )


def _unpublished(pipeline: Pipeline, after: int, limit: int) -> list[tuple[int, Transition]]:
    return pipeline.repository.unpublished_transitions(limit, after)


def _prune(pipeline: Pipeline, parts_kept_seconds: float) -> int:
    now = pipeline.clock()
    return pipeline.repository.prune(now, parts_before=now - timedelta(seconds=parts_kept_seconds))


def _forget_states(pipeline: Pipeline) -> None:
    pipeline.repository.cache.forget()


# --- the child process -----------------------------------------------------------------------------
_FRAME = struct.Struct("!Q")  # payload length, then a pickle


def _send_frame(connection: socket.socket, payload: bytes) -> None:
    connection.sendall(_FRAME.pack(len(payload)))
    connection.sendall(payload)


def _receive_exactly(connection: socket.socket, size: int) -> bytearray:
    buffer = bytearray(size)
    view, received = memoryview(buffer), 0
    while received < size:
        count = connection.recv_into(view[received:])
        if count == 0:
            raise EOFError
        received += count
    return buffer


def _receive_frame(connection: socket.socket) -> bytearray:
    (size,) = _FRAME.unpack(_receive_exactly(connection, _FRAME.size))
    return _receive_exactly(connection, size)


def tune_collector() -> None:
    """The pipeline process's garbage collector, once started (also ``bench/pipeline_cpu.py``'s)."""
    gc.freeze()  # as in the worker (streams.app.faust_worker): full collections skip the start-up's objects
    # a batch allocates tens of thousands of objects, nearly all freed by reference counting: young
    # collections at the default threshold walk them for nothing (1.7 % of the instructions per event)
    gc.set_threshold(20_000, *gc.get_threshold()[1:])


def _serve(config: PipelineConfig, connection: socket.socket, parent: int) -> None:
    """The child's main loop: one call at a time, until the worker closes its end (or dies)."""
    prctl = getattr(ctypes.CDLL(None, use_errno=True), "prctl", None)  # Linux only
    if prctl is not None and prctl(PR_SET_PDEATHSIG, signal.SIGKILL) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:  # the worker died before prctl took effect
        os._exit(1)
    # Ctrl-C and a group-wide SIGTERM reach the child too: the worker decides when a batch is abandoned,
    # and the child ends when the worker closes the connection or dies
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    pipeline = config.build()
    checkpoints = WalCheckpoints.start_for(pipeline.repository.engine)  # a daemon thread: ends with us
    tune_collector()
    with connection:
        while True:
            try:
                function, args = pickle.loads(_receive_frame(connection))
            except (EOFError, ConnectionError):
                return
            try:
                reply = pickle.dumps((True, function(pipeline, *args)), pickle.HIGHEST_PROTOCOL)
            except Exception as exc:
                reply = _pickled_error(exc)
            try:
                _send_frame(connection, reply)
            except ConnectionError:  # the worker gave up on this call (cancelled) and closed
                return
            if checkpoints is not None:  # after the reply: the worker goes on with it meanwhile
                checkpoints.restart_if_due()


def _pickled_error(exc: Exception) -> bytes:
    try:
        return pickle.dumps((False, exc), pickle.HIGHEST_PROTOCOL)
    except Exception:  # some driver exceptions do not pickle: their text still reaches the worker's log
        return pickle.dumps((False, RuntimeError(f"{type(exc).__name__}: {exc}")), pickle.HIGHEST_PROTOCOL)


# --- the worker's side -----------------------------------------------------------------------------
class Calls(Protocol):
    async def __call__(self, function: Callable[..., T], *args: Any) -> T: ...

    def close(self) -> None: ...


class ChildProcess:
    """Calls into a spawned child (a fork would copy Faust's threads and sockets), started on first use
    and again after it died.

    Frames are written and read with blocking calls on the event loop, only once the other side is
    ready: the child waits in ``recv`` for the request, and the reply is read once its first bytes are
    there, while the child writes the rest. Both then move at memory speed; through asyncio streams, a
    batch's frame would go in socket-buffer-sized pieces, each waiting for a turn of the busy event
    loop (40-200 ms per batch)."""

    def __init__(self, config: PipelineConfig, *, io_timeout: float = 60.0) -> None:
        self.config = config
        self.io_timeout = io_timeout  # a frame's transfer once started; the child's start (~1 s) included
        self._lock = asyncio.Lock()  # one call at a time: replies come back in order
        self._connection: socket.socket | None = None

    async def __call__(self, function: Callable[..., T], *args: Any) -> T:
        async with self._lock:
            connection = self._connection or self._start()
            payload = pickle.dumps((function, args), pickle.HIGHEST_PROTOCOL)
            try:
                _send_frame(connection, payload)
                await _readable(connection)
                ok, value = pickle.loads(_receive_frame(connection))
            except (OSError, EOFError) as exc:  # a timeout is an OSError too
                self.close()
                log.error("the pipeline process died; a new one starts with the next attempt")
                raise PipelineProcessDied("the pipeline process died mid-call") from exc
            except BaseException:
                # cancelled mid-call: the reply would arrive out of step, so this child is done. It ends
                # once its current call has ended (committed or rolled back), on the closed connection.
                self.close()
                raise
        if ok:
            return value  # type: ignore[no-any-return]
        raise value

    def _start(self) -> socket.socket:
        ours, theirs = socket.socketpair()
        process = multiprocessing.get_context("spawn").Process(
            target=_serve, args=(self.config, theirs, os.getpid()), name="lifecycle-pipeline", daemon=True
        )
        try:
            process.start()
        finally:
            theirs.close()
        atexit.register(self._hang_up)
        ours.settimeout(self.io_timeout)
        self._connection = ours
        return ours

    def close(self) -> None:
        if self._connection is not None:
            atexit.unregister(self._hang_up)
            self._connection.close()
            self._connection = None
        # not joined: it exits on its own once its call ends; multiprocessing reaps it

    def _hang_up(self) -> None:
        """At exit multiprocessing joins its children: ours must see the end of the connection first."""
        if self._connection is not None:
            with contextlib.suppress(OSError):
                self._connection.shutdown(socket.SHUT_RDWR)


async def _readable(connection: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(connection.fileno(), wake)
    try:
        await ready
    finally:
        loop.remove_reader(connection.fileno())


class WorkerThread:
    """Calls on one thread of the worker: for tests, tools and one-core machines."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self._executor: ThreadPoolExecutor | None = None

    async def __call__(self, function: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1)
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, self.pipeline, *args)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


class PipelineRunner:
    """Runs the pipeline's blocking calls one at a time: batches never overlap, so two batches never
    read and write the same customer at once."""

    def __init__(self, calls: Calls) -> None:
        self._calls = calls

    @classmethod
    def in_process(cls, config: PipelineConfig) -> PipelineRunner:
        """The default: a child process."""
        return cls(ChildProcess(config))

    @classmethod
    def in_thread(cls, pipeline: Pipeline) -> PipelineRunner:
        return cls(WorkerThread(pipeline))

    async def process(
        self,
        messages: Sequence[PlainMessage],
        published: Sequence[str] = (),
        *,
        batch_id: str | None = None,
        settled: Sequence[str] = (),
        resume: bool = False,
    ) -> BatchResult:
        """``messages``: plain tuples cross to the child fastest (a RawMessage is one too, a slower one).
        The rest: :meth:`Pipeline.process`."""
        return await self._calls(_process, messages, list(published), batch_id, list(settled), resume)

    async def unpublished_transitions(self, after: int = 0, limit: int = 10_000) -> list[tuple[int, Transition]]:
        """A page of the outbox: up to ``limit`` transitions by id, from ``after`` on."""
        return await self._calls(_unpublished, after, limit)

    async def prune(self, parts_kept_seconds: float) -> int:
        """One short transaction of retention (:meth:`Repository.prune`), between two batches."""
        return await self._calls(_prune, parts_kept_seconds)

    async def forget_states(self) -> None:
        """The pipeline's kept states are read from the database again: others may have written them."""
        await self._calls(_forget_states)

    def close(self) -> None:
        self._calls.close()
