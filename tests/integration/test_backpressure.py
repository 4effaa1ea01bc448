"""Backpressure: a burst of ten times the sustained rate is absorbed by the topic, not by the worker's memory.

Kafka holds the backlog; the worker pulls at its own pace (Faust stops fetching while its stream buffer
is full and a batch holds at most ``batch_max`` events), so the lag grows during the burst, drains
afterwards, and the worker's peak RSS stays bounded whatever the backlog. The database stalls during
the burst (the test holds SQLite's write lock), so the burst outruns the worker however fast the
machine: on a fast day one worker kept up with the burst alone. Writes its figures to
data/reliability.json for the README.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import statistics
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy.engine import make_url

from streams.cli.processes import WorkerProcess, tree_memory_mib
from streams.cli.simulator import Simulation
from streams.kafka.admin import ensure_topics
from streams.kafka.publisher import EventPublisher
from streams.settings import Settings
from tests.conftest import settings_from
from tests.integration.test_faults import REPORT, assert_exact_outcome, committed_events, wait_until_done

pytestmark = pytest.mark.faults
SUSTAINED = 400  # events/s: well inside one worker's throughput (README, Performance)
BURST = 10 * SUSTAINED
RSS_BOUND_MIB = 512


def publish_paced(settings: Settings, documents: Sequence[dict[str, Any]], rate: int, sampler: Sampler) -> float:
    """Offered load: ``rate`` events per second in 50 ms slices; returns the rate achieved."""
    started = time.monotonic()
    with EventPublisher(settings) as publisher:
        for index, document in enumerate(documents):
            publisher.send_raw(
                publisher.topic_for(document["type"]), document["customer_id"].encode(), orjson.dumps(document)
            )
            sampler.published += 1
            ahead = index / rate - (time.monotonic() - started)
            if ahead > 0.05:
                time.sleep(ahead)  # pacing the load generator, not waiting for an outcome
    return len(documents) / (time.monotonic() - started)


@contextlib.contextmanager
def stalled_database(settings: Settings) -> Iterator[None]:
    """SQLite's write lock held: the worker's next batch waits for it (busy timeout 30 s), reads go on."""
    lock = sqlite3.connect(str(make_url(settings.sqlalchemy_url).database), isolation_level=None)
    try:
        lock.execute("BEGIN IMMEDIATE")
        yield
        lock.execute("ROLLBACK")
    finally:
        lock.close()


class Sampler(threading.Thread):
    """Lag (handed to the producer - committed) and worker RSS, four times a second."""

    def __init__(self, settings: Settings, pid: int) -> None:
        super().__init__(daemon=True)
        self.settings, self.pid = settings, pid
        self.published = 0
        self.samples: list[tuple[str, int, float]] = []  # (phase, lag, rss MiB)
        self.phase = "sustained"
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.25):
            lag = self.published - committed_events(self.settings)
            self.samples.append((self.phase, lag, tree_memory_mib(self.pid)))

    def lags(self, phase: str) -> list[int]:
        return [lag for p, lag, _ in self.samples if p == phase] or [0]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_burst_of_ten_times_the_sustained_rate_is_absorbed(
    worker_env: dict[str, str], tmp_path: Path, big_simulation: Simulation
) -> None:
    settings = settings_from(worker_env)
    ensure_topics(settings)
    events = big_simulation.events
    sustained, burst = events[: SUSTAINED * 10], events[SUSTAINED * 10 :]
    worker = WorkerProcess(worker_env, tmp_path / "worker.log").start()
    assert worker.process is not None
    pid = worker.process.pid
    sampler = Sampler(settings, pid)
    sampler.start()
    try:
        sustained_rate = publish_paced(settings, sustained, SUSTAINED, sampler)
        rss_before_burst = tree_memory_mib(pid)
        sampler.phase = "burst"
        burst_started = time.monotonic()
        with stalled_database(settings):
            burst_rate = publish_paced(settings, burst, BURST, sampler)
        sampler.phase = "drain"
        wait_until_done(settings, big_simulation)
        drained_after = time.monotonic() - burst_started
        peak_rss = tree_memory_mib(pid, "VmHWM")
        assert worker.process.poll() is None, "the worker died under the burst"
    finally:
        sampler.done.set()
        sampler.join()
        worker.stop()
    assert_exact_outcome(settings, big_simulation)
    peak_lag = max(sampler.lags("burst") + sampler.lags("drain"))
    # the burst really outran the worker (lag piled up far beyond a second of sustained load) ...
    assert peak_lag > 5 * SUSTAINED, f"the burst never built a backlog: peak lag {peak_lag}"
    # ... and the backlog stayed in Kafka, not in the worker's memory
    assert peak_rss < RSS_BOUND_MIB, f"peak RSS {peak_rss:.0f} MiB with a backlog of {peak_lag} events"
    row = {
        "events": len(events),
        "sustained events/s offered": round(sustained_rate),
        "burst events/s offered": round(burst_rate),
        "median lag events, sustained load": statistics.median(sampler.lags("sustained")),
        "peak lag events": peak_lag,
        "burst start to drained s": round(drained_after, 1),
        "RSS before burst MiB (worker + pipeline process)": round(rss_before_burst),
        "peak RSS MiB": round(peak_rss),
    }
    rows = json.loads(REPORT.read_text()) if REPORT.exists() else {}
    rows["backpressure"] = row
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(json.dumps(rows, indent=2) + "\n")
