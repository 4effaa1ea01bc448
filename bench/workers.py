"""The benchmark's workers: `lifecycle worker` processes as users run them (streams.cli.processes), on the
benchmark's topics and database, with a cheap view of their progress."""

from __future__ import annotations

import http.client
import os
import signal
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from streams.cli.processes import WorkerProcess
from streams.kafka.broker import free_port


def worker_env(bootstrap: str, topics: list[str], database_url: str, **overrides: str) -> dict[str, str]:
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "LIFECYCLE_DATABASE_URL": database_url,
        "LIFECYCLE_DATA_DIR": tempfile.mkdtemp(),
        "LIFECYCLE_APP_ID": f"bench-{uuid.uuid4().hex[:8]}",
        "LIFECYCLE_TOPIC_LEADS": topics[0],
        "LIFECYCLE_TOPIC_DEALS": topics[1],
        "LIFECYCLE_TOPIC_TICKETS": topics[2],
        "LIFECYCLE_TOPIC_LIFECYCLE": f"{topics[0]}-out-{uuid.uuid4().hex[:6]}",
        "LIFECYCLE_TOPIC_DLQ": f"{topics[0]}-dlq-{uuid.uuid4().hex[:6]}",
        "LIFECYCLE_LOG_LEVEL": "warning",
        **overrides,
    }


class BenchWorker(WorkerProcess):
    """A worker whose progress the benchmark polls (:meth:`counted`)."""

    def __init__(self, env: Mapping[str, str], log_path: Path | None = None) -> None:
        super().__init__(env, log_path)
        self._connection: http.client.HTTPConnection | None = None

    def counted(self) -> int:
        """Events the worker has committed and counted; 0 until its web server answers.

        Polled every 20 ms by the latency run, on the two cores it measures, so the poll is made cheap: one
        kept-alive connection, one sample, ``lifecycle_batch_events_sum`` (events per batch, all outcomes).
        It is recorded in the same step as the batch's ``lifecycle_events_total``, without an await in
        between, so a scrape sees both or neither; rendering the latter's ~200 series took 15 % of the
        worker's core at that rate."""
        try:
            if self._connection is None:
                self._connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            self._connection.request("GET", "/metrics?name[]=lifecycle_batch_events_sum")
            text = self._connection.getresponse().read()
        except OSError:
            self._connection = None
            return 0
        return int(sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(b"lifecycle_batch")))


def start_workers(env: Mapping[str, str], count: int) -> list[BenchWorker]:
    """``count`` workers launched side by side, each on a port of its own; not waited for."""
    return [BenchWorker({**env, "LIFECYCLE_WEB_PORT": str(free_port())}).launch() for _ in range(count)]


def stop_workers(workers: Sequence[WorkerProcess]) -> None:
    """All of them told at once, then waited for: none rebalances onto the others while they stop."""
    for worker in workers:
        worker.signal(signal.SIGTERM)
    for worker in workers:
        worker.wait()
