"""Benchmark: the floor (aiokafka + JSON decode), the framework (a bare Faust agent) and the product
(the real `lifecycle worker` on SQLite and PostgreSQL), on one broker, with the same events; then the
product's end-to-end latency at fixed offered loads (README, Performance).

    .venv/bin/python bench/run.py --events 50000 --repeat 3 [--postgres postgresql+psycopg://...]

Prints tables and writes bench/results/latest.json. Each measurement runs in its own process; its
time runs from the first to the last event handled (start-up excluded), CPU seconds and peak RSS are
the process's own (/proc). The median of the repeats is reported.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import http.client
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streams.broker import LocalKafka, free_port  # noqa: E402
from streams.settings import Settings  # noqa: E402
from tests.support import http_get, memory_mib, metric_value, process_tree  # noqa: E402

TOPICS = ("leads", "deals", "tickets")
FRAMEWORK = "framework: bare Faust agent"


def proc_usage(pid: int) -> tuple[float, float]:
    """(CPU seconds, peak RSS MiB) of a live process."""
    ticks = os.sysconf("SC_CLK_TCK")
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / ticks, memory_mib(pid, "VmHWM")


def self_usage() -> tuple[float, float]:
    return proc_usage(os.getpid())


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy (all cores; /proc/stat: everything but idle and iowait)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


class TreeUsage:
    """CPU seconds and peak RSS of a process and its children (the worker's pipeline process), sampled
    while they live: a child's figures are gone once it exits."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.latest: dict[int, tuple[float, float]] = {}

    def sample(self) -> None:
        for pid in process_tree(self.pid):
            with contextlib.suppress(FileNotFoundError, ProcessLookupError, StopIteration):  # exited meanwhile
                self.latest[pid] = proc_usage(pid)

    @property
    def cpu(self) -> float:
        return sum(cpu for cpu, _ in self.latest.values())

    @property
    def root_cpu(self) -> float:
        """The process's own share of :attr:`cpu` (the worker's main process, without its pipeline process)."""
        return self.latest.get(self.pid, (0.0, 0.0))[0]

    @property
    def rss(self) -> float:
        """Sum of each process's peak: an upper bound of the tree's peak."""
        return sum(rss for _, rss in self.latest.values())


# --- the measured programs (run as `bench/run.py _floor ...` in their own process) ----------------
async def floor(bootstrap: str, topics: list[str], total: int) -> dict[str, float]:
    import orjson
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    # the benchmark created the topics itself, with the configured partition count
    partitions = [TopicPartition(t, p) for t in topics for p in range(Settings().topic_partitions)]
    consumer.assign(partitions)
    await consumer.seek_to_beginning(*partitions)
    seen, started = 0, 0.0
    while seen < total:
        batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
        for records in batches.values():
            if not started:
                started = time.perf_counter()
            for record in records:
                orjson.loads(record.value)
                seen += 1
    elapsed = time.perf_counter() - started
    await consumer.stop()
    cpu, rss = self_usage()
    return {"seconds": elapsed, "cpu": cpu, "rss": rss}


def framework(bootstrap: str, topics: list[str], total: int, lean: bool) -> dict[str, float]:
    """A bare Faust agent: as Faust ships, or (``lean``) with the worker's consumer, sensors, logging and
    schema."""
    import faust
    from prometheus_client import CollectorRegistry

    from streams.app import faust_worker, use_lean_faust
    from streams.transport import RawBytes

    app = faust.App(
        f"bench-{uuid.uuid4().hex[:8]}",
        broker=f"kafka://{bootstrap}",
        key_serializer="raw",
        value_serializer="raw",
        store="memory://",
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        datadir=tempfile.mkdtemp(),
    )
    if lean:
        settings = Settings()
        use_lean_faust(
            app,
            CollectorRegistry(),
            fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
            fetch_min_bytes=settings.kafka_fetch_min_bytes,
        )
    source = (
        app.topic(*topics, schema=RawBytes())
        if lean
        else app.topic(*topics, key_serializer="raw", value_serializer="raw")
    )
    result: dict[str, float] = {}
    state = {"seen": 0, "started": 0.0}

    @app.agent(source)
    async def bare(stream: Any) -> None:
        async for _ in stream:
            if not state["seen"]:
                state["started"] = time.perf_counter()
            state["seen"] += 1
            if state["seen"] == total:
                result["seconds"] = time.perf_counter() - state["started"]
                cpu, rss = self_usage()
                result.update(cpu=cpu, rss=rss)
                print(json.dumps(result), flush=True)
                os._exit(0)

    worker = (
        faust_worker(app, "error") if lean else faust.Worker(app, loglevel="error", quiet=True, redirect_stdouts=False)
    )
    worker.execute_from_commandline()
    return result


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


@dataclass
class BenchWorker:
    process: subprocess.Popen[bytes]
    port: int
    _connection: http.client.HTTPConnection | None = None

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


def start_workers(env: dict[str, str], count: int) -> list[BenchWorker]:
    lifecycle = str(Path(sys.executable).with_name("lifecycle"))
    workers = []
    for _ in range(count):
        port = free_port()
        process = subprocess.Popen(
            [lifecycle, "worker"],
            env={**env, "LIFECYCLE_WEB_PORT": str(port)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        workers.append(BenchWorker(process, port))
    return workers


def product(
    bootstrap: str,
    topics: list[str],
    total: int,
    database_url: str,
    workers: int = 1,
    in_thread: bool = False,
    window: tuple[float, float] = (0.0, 1.0),
) -> dict[str, float]:
    """``window``: measure between these shares of the events done (the scaling rows use 10-90 %, so
    the second worker's join and the rebalance it causes stay out of both the 1- and 2-worker figure).
    Progress is the workers' own count of committed events (:meth:`BenchWorker.counted`): a ``count(*)``
    of processed events would cost the database more with every stored event."""
    overrides = {"LIFECYCLE_PIPELINE_PROCESS": "false"} if in_thread else {}
    os.sync()  # the previous rows' (and a copied database's) dirty pages are written back now, not during this one
    running = start_workers(worker_env(bootstrap, topics, database_url, **overrides), workers)
    usages = [TreeUsage(worker.process.pid) for worker in running]
    started, ended = 0.0, 0.0
    first, last = max(1, int(window[0] * total)), int(window[1] * total)
    try:
        while True:
            done = sum(worker.counted() for worker in running)
            now = time.perf_counter()
            if done >= first and not started:
                started = now
            for usage in usages:
                usage.sample()
            if done >= last and not ended:
                ended = now
            if done >= total:
                break
            time.sleep(0.05)  # polling the workers, the only view into their progress
        # scaled to the whole stream, so the table's events/s column stays total / seconds
        elapsed = (ended - started) * total / max(1, last - first)
    finally:
        for worker in running:
            worker.process.terminate()
        for worker in running:
            worker.process.wait(60)
    return {"seconds": elapsed, "cpu": sum(u.cpu for u in usages), "rss": max(u.rss for u in usages)}


def latency(
    bootstrap: str,
    topics: list[str],
    database_url: str,
    rate: float,
    count: int,
    linger_ms: float,
    series: list[list[float]] | None = None,
    warmup_seconds: float = 0.0,
) -> dict[str, float]:
    """Publish ``count`` fresh events at ``rate``/s, after ``warmup_seconds`` of the same load that is not
    measured (a just-started worker's first seconds are slower: README, Performance); each one's latency
    runs from its publish to the first /metrics poll (every 20 ms, of one series:
    :meth:`BenchWorker.counted`) that counts it. Events are matched in order (the k-th counted is the k-th
    published), exact for a FIFO pipeline and close for four partitions. ``p99_all``: the p99 over the
    warm-up's events and the measured ones together."""
    import threading

    import confluent_kafka
    import orjson

    from streams.contract import EVENT_TOPICS
    from streams.kafka_admin import ensure_topics
    from streams.settings import Settings

    suffix = uuid.uuid4().hex[:8]
    fresh = [f"{topic}-lat-{suffix}" for topic in topics]
    env = worker_env(bootstrap, fresh, database_url)
    settings = Settings(topic_leads=fresh[0], topic_deals=fresh[1], topic_tickets=fresh[2])
    ensure_topics(settings, fresh)
    warmup = int(rate * warmup_seconds)
    events = simulated(1 + warmup + count, seed=2)
    os.sync()  # as in product()
    worker = start_workers(env, 1)[0]
    try:
        while True:  # the worker's web server answers once it runs; then let it join the group
            try:
                http_get(f"http://127.0.0.1:{worker.port}/healthz")
                break
            except OSError:
                time.sleep(0.2)
        counted = worker.counted
        published: list[float] = []
        seen: list[tuple[float, int]] = []
        stop = threading.Event()

        def watch() -> None:
            while not stop.is_set():
                value = counted()
                seen.append((time.perf_counter(), value))
                if value >= len(events):
                    return
                time.sleep(0.02)

        watcher = threading.Thread(target=watch, daemon=True)
        # The load generator shares the two cores with what it measures, so it does as little as it can:
        # events encoded up front, sent by librdkafka (C); kafka-python, the product's publisher, costs
        # four times the CPU per event (README, Performance)
        topic_of = {kind: settings.source_topics[topic] for kind, topic in EVENT_TOPICS.items()}
        encoded = [(topic_of[d["type"]], d["customer_id"].encode(), orjson.dumps(d)) for d in events]
        producer = confluent_kafka.Producer(
            {
                "bootstrap.servers": bootstrap,
                "acks": "all",
                "enable.idempotence": True,
                # upstream producers batch too: at librdkafka's default 5 ms the broker, on the same two cores,
                # took twice the CPU for the same events (README, Performance); the linger counts in the latency
                "linger.ms": linger_ms,
                "partitioner": "murmur2_random",  # the Java client's and kafka-python's: same partition per key
            }
        )
        producer.produce(encoded[0][0], encoded[0][2], encoded[0][1])  # warm-up: connections, the child's start
        producer.flush(60)
        while counted() < 1:
            time.sleep(0.05)
        warm = batch_totals(worker.port)  # the warm-up batch waited for the pipeline process to start
        # where the cores go while the load runs: the worker (with its pipeline process), this load
        # generator, and the rest (the broker, mostly)
        tree = TreeUsage(worker.process.pid)
        watcher.start()
        begin = time.perf_counter()
        for index, (topic, key, value) in enumerate(encoded[1:]):
            if index == warmup:  # the measured part begins: its cores and batches
                tree.sample()
                cpu_before = (machine_busy(), tree.cpu, self_usage()[0], tree.root_cpu)
                measured_from = time.perf_counter()
                if warmup:
                    warm = batch_totals(worker.port)
            ahead = begin + index / rate - time.perf_counter()
            if ahead > 0:  # at least 2 ms, then what is due goes out: a wake-up per event cost 8 % of a core
                time.sleep(max(ahead, 0.002))
            producer.produce(topic, value, key)
            published.append(time.perf_counter())
            producer.poll(0)  # serves delivery reports, so librdkafka's queue never fills
        if producer.flush(60):
            raise RuntimeError("the load generator could not deliver every event within 60 s")
        watcher.join(600)
        stop.set()
        tree.sample()
        cpu_after = (machine_busy(), tree.cpu, self_usage()[0], tree.root_cpu)
        busy, worker_cpu, generator_cpu, main_cpu = (
            after - before for after, before in zip(cpu_after, cpu_before, strict=True)
        )
        loaded = time.perf_counter() - measured_from
        batches = [end - start for start, end in zip(warm, batch_totals(worker.port), strict=True)]
    finally:
        worker.process.terminate()
        worker.process.wait(60)
    latencies = []
    position = 0
    for k, sent in enumerate(published, start=2):  # the warm-up event was number 1
        while position < len(seen) and seen[position][1] < k:
            position += 1
        if position == len(seen):
            break
        latencies.append(seen[position][0] - sent)
    if series is not None:  # each event's latency in ms, in the order they were sent, warm-up included
        series.append([round(1000 * value, 1) for value in latencies])
    everything = sorted(latencies)
    latencies = sorted(latencies[warmup:])

    def quantile(q: float, values: list[float] = latencies) -> float:
        return values[min(len(values) - 1, int(q * len(values)))] * 1000

    batch_count, batch_events, write_seconds, publish_seconds = batches
    return {
        "events": len(latencies),
        "rate": rate,
        "p50": quantile(0.50),
        "p95": quantile(0.95),
        "p99": quantile(0.99),
        "p99_all": quantile(0.99, everything),
        "warmup_events": warmup,
        "batch_events": batch_events / batch_count,
        "write_ms": 1000 * write_seconds / batch_count,
        "publish_ms": 1000 * publish_seconds / batch_count,
        "cores_busy": busy / loaded,
        "cores_worker": worker_cpu / loaded,
        "cores_worker_main": main_cpu / loaded,
        "cores_generator": generator_cpu / loaded,
        "cores_rest": (busy - worker_cpu - generator_cpu) / loaded,
    }


def batch_totals(port: int) -> tuple[float, float, float, float]:
    """The worker's own view of its batches (README, Metrics): how many, their events, each step's time."""
    names = ("lifecycle_batch_events_count", "lifecycle_batch_events_sum", "lifecycle_batch_seconds_sum")
    url = f"http://127.0.0.1:{port}/metrics?" + "&".join(f"name[]={name}" for name in names)
    text = http_get(url)[1].decode()
    return (
        metric_value(text, "lifecycle_batch_events_count"),
        metric_value(text, "lifecycle_batch_events_sum"),
        metric_value(text, "lifecycle_batch_seconds_sum", step="write"),
        metric_value(text, "lifecycle_batch_seconds_sum", step="publish"),
    )


def simulated(count: int, seed: int = 1) -> list[dict[str, Any]]:
    from streams.simulator import simulate

    customers = max(1, count * 10 // 54)  # ~5.4 events a customer
    while len(events := simulate(customers, seed=seed).events) < count:
        customers = customers * 11 // 10 + 1
    return events[:count]


def prefill(database_url: str, customers: int) -> None:
    """A read model that already holds ``customers`` customers (ids not in the stream), with their
    tickets, deals and processed-event records, so the measured stream runs against tables that size."""
    from sqlalchemy import insert

    from streams.db.engine import make_engine
    from streams.db.migrations import upgrade
    from streams.db.models import Customer, Deal, ProcessedEvent, Ticket

    engine = make_engine(database_url)
    upgrade(engine)
    moment = datetime(2026, 1, 1)
    chunk = 20_000
    with engine.begin() as connection:
        for start in range(0, customers, chunk):
            ids = [f"pre-{n:08d}" for n in range(start, min(customers, start + chunk))]
            connection.execute(
                insert(Customer),
                [{"customer_id": i, "stage": "customer", "first_seen_at": moment, "recent_csat": []} for i in ids],
            )
            connection.execute(
                insert(Ticket),
                [{"ticket_id": f"t-{i}", "customer_id": i, "status": "resolved", "opened_at": moment} for i in ids],
            )
            connection.execute(
                insert(Deal),
                [{"deal_id": f"d-{i}", "customer_id": i, "status": "won", "amount": 100.0} for i in ids[::2]],
            )
            connection.execute(insert(ProcessedEvent), [{"event_id": f"e-{i}-{k}"} for i in ids for k in range(5)])
    engine.dispose()


def measure(kind: str, args: list[str]) -> dict[str, float]:
    completed = subprocess.run(
        [sys.executable, __file__, f"_{kind}", *args], capture_output=True, text=True, timeout=3600, check=False
    )
    # Faust's terminal codes may precede the JSON on its line
    lines = [line[line.index('{"seconds"') :] for line in completed.stdout.splitlines() if '{"seconds"' in line]
    if completed.returncode != 0 or not lines:
        raise RuntimeError(f"{kind} failed:\n{completed.stdout[-2000:]}\n{completed.stderr[-2000:]}")
    result: dict[str, float] = json.loads(lines[-1])
    return result


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1].startswith("_"):
        kind, bootstrap, topics, total = sys.argv[1], sys.argv[2], sys.argv[3].split(","), int(sys.argv[4])
        if kind == "_floor":
            print(json.dumps(asyncio.run(floor(bootstrap, topics, total))))
        else:
            framework(bootstrap, topics, total, lean=kind == "_framework_lean")
        return
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--postgres", default=os.environ.get("LIFECYCLE_TEST_POSTGRES_URL"))
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {SECTIONS}")
    parser.add_argument("--growth", default="10000,100000,1000000", help="stored customers for the growth rows")
    parser.add_argument(
        "--latency-loads",
        default="0.25,0.375,0.5",
        help="offered loads of the latency rows, as shares of the SQLite row's events/s",
    )
    parser.add_argument(
        "--latency-rate", type=float, help="one offered load in events/s instead (no SQLite row needed)"
    )
    parser.add_argument("--latency-events", type=int, default=30_000, help="events measured per latency run")
    parser.add_argument(
        "--latency-warmup-seconds",
        type=float,
        default=5.0,
        help="seconds of the same load before the measured events, not measured (a just-started worker's)",
    )
    parser.add_argument(
        "--latency-linger-ms", type=float, default=25.0, help="the load generator's batching (librdkafka linger.ms)"
    )
    parser.add_argument(
        "--latency-series",
        type=Path,
        help="write each latency run's events' latencies (ms, in the order sent) to this JSON file",
    )
    options = parser.parse_args()
    sections = set(options.sections.split(","))

    with published_stream("bench", options.events) as (bootstrap, topics, total):
        args = [bootstrap, ",".join(topics), str(total)]

        def sqlite() -> str:
            return f"sqlite:///{tempfile.mkdtemp()}/bench.db"

        plan: list[tuple[str, str, Callable[[], dict[str, float]]]] = [
            ("throughput", "floor: aiokafka + JSON decode", lambda: measure("floor", args)),
            ("throughput", FRAMEWORK, lambda: measure("framework", args)),
            ("throughput", f"{FRAMEWORK}, our consumer, sensors and schema", lambda: measure("framework_lean", args)),
            ("throughput", "product: SQLite", lambda: product(bootstrap, topics, total, sqlite())),
            (
                "throughput",
                "product: SQLite, pipeline in a worker thread",
                lambda: product(bootstrap, topics, total, sqlite(), in_thread=True),
            ),
        ]
        if options.postgres:
            postgres = options.postgres
            plan += [
                (
                    "throughput",
                    "product: PostgreSQL",
                    lambda: product(bootstrap, topics, total, fresh_postgres_database(postgres)),
                ),
                (
                    "scaling",
                    "product: PostgreSQL, 1 worker, 10-90 % window",
                    lambda: product(bootstrap, topics, total, fresh_postgres_database(postgres), window=(0.1, 0.9)),
                ),
                (
                    "scaling",
                    "product: PostgreSQL, 2 workers, 10-90 % window",
                    lambda: product(
                        bootstrap, topics, total, fresh_postgres_database(postgres), workers=2, window=(0.1, 0.9)
                    ),
                ),
            ]
        for stored in [int(n) for n in options.growth.split(",")] if "growth" in sections else []:
            plan.append(
                (
                    "growth",
                    f"product: SQLite, {stored:,} customers stored",
                    functools.partial(grown, bootstrap, topics, total, prefilled_sqlite(stored)),
                )
            )
        rows: dict[str, dict[str, float]] = {}
        for section, label, run in plan:
            if section in sections or label.startswith(("floor", "framework")):
                runs = [run() for _ in range(options.repeat)]
                rows[label] = {key: statistics.median(r[key] for r in runs) for key in ("seconds", "cpu", "rss")}
        latencies: list[dict[str, float]] = []
        if "latency" in sections:
            loads: list[tuple[float | None, float]]
            if options.latency_rate:
                loads = [(None, options.latency_rate)]
            else:
                sqlite_rate = total / rows["product: SQLite"]["seconds"]
                loads = [(float(share), float(share) * sqlite_rate) for share in options.latency_loads.split(",")]
            series: list[dict[str, Any]] = []
            for share, rate in loads:
                sent: list[list[float]] = []
                runs = [
                    latency(
                        bootstrap,
                        topics,
                        sqlite(),
                        rate,
                        options.latency_events,
                        options.latency_linger_ms,
                        sent,
                        options.latency_warmup_seconds,
                    )
                    for _ in range(options.repeat)
                ]
                series.append({"rate": rate, "runs": sent})
                row = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
                latencies.append({**row, "share": share} if share is not None else row)
            if options.latency_series:
                options.latency_series.write_text(json.dumps(series) + "\n")
        report(rows, latencies, total, options)


@contextlib.contextmanager
def published_stream(prefix: str, count: int) -> Iterator[tuple[str, list[str], int]]:
    """KAFKA_BOOTSTRAP_SERVERS, or a broker of our own for the duration; fresh topics holding the seeded
    stream of ``count`` events. Yields (bootstrap servers, topics, events published)."""
    from streams.kafka_admin import ensure_topics
    from streams.publisher import EventPublisher

    broker = None
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or ""
    if not bootstrap:
        broker = LocalKafka(Path(tempfile.mkdtemp()) / "kafka").start()
        bootstrap = broker.bootstrap_servers
    try:
        suffix = uuid.uuid4().hex[:8]
        topics = [f"{prefix}-{name}-{suffix}" for name in TOPICS]
        os.environ["KAFKA_BOOTSTRAP_SERVERS"] = bootstrap
        settings = Settings(topic_leads=topics[0], topic_deals=topics[1], topic_tickets=topics[2])
        ensure_topics(settings, topics)
        events = simulated(count)
        with EventPublisher(settings) as publisher:
            for document in events:
                publisher.publish(document)
        yield bootstrap, topics, len(events)
    finally:
        if broker is not None:
            broker.stop()


SECTIONS = ("throughput", "scaling", "growth", "latency")


def prefilled_sqlite(customers: int) -> Path:
    template = Path(tempfile.mkdtemp()) / "template.db"
    started = time.perf_counter()
    prefill(f"sqlite:///{template}", customers)
    print(f"prefilled {customers:,} customers in {time.perf_counter() - started:.0f}s", file=sys.stderr)
    return template


def grown(bootstrap: str, topics: list[str], total: int, template: Path) -> dict[str, float]:
    """The same stream, against a copy of a database that already holds many customers."""
    copy = Path(tempfile.mkdtemp()) / "bench.db"
    shutil.copyfile(template, copy)
    try:
        return product(bootstrap, topics, total, f"sqlite:///{copy}")
    finally:
        shutil.rmtree(copy.parent, ignore_errors=True)


def fresh_postgres_database(server_url: str) -> str:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))  # our own generated name
    admin.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def report(
    rows: dict[str, dict[str, float]], latencies: list[dict[str, float]], total: int, options: argparse.Namespace
) -> None:
    floor_rate = total / rows["floor: aiokafka + JSON decode"]["seconds"]
    framework_rate = total / rows[FRAMEWORK]["seconds"]
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    lines = [
        f"events: {total}, repeats: {options.repeat} (median), machine: {machine}",
        "",
        "| run | events | seconds | events/s | CPU s | peak RSS MiB | / framework | / floor |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, row in rows.items():
        rate = total / row["seconds"]
        lines.append(
            f"| {label} | {total} | {row['seconds']:.2f} | {rate:,.0f} | {row['cpu']:.1f} | {row['rss']:.0f} "
            f"| {rate / framework_rate:.2f} | {rate / floor_rate:.3f} |"
        )
    if latencies:
        lines += [
            "",
            "| end-to-end latency (publish -> committed and counted in /metrics) | offered events/s | events "
            "| p50 ms | p95 ms | p99 ms | p99 ms with the warm-up | events per batch | write ms per batch "
            "| publish ms per batch "
            f"| cores busy (of {os.cpu_count()}): all / worker (main + pipeline process) / load generator "
            "/ broker and rest |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for row in latencies:
            load = f" ({row['share']:.1%} of its throughput)" if "share" in row else ""
            lines.append(
                f"| product: SQLite{load} | {row['rate']:,.0f} | {row['events']:.0f} "
                f"| {row['p50']:.0f} | {row['p95']:.0f} | {row['p99']:.0f} | {row['p99_all']:.0f} "
                f"| {row['batch_events']:.0f} | {row['write_ms']:.0f} | {row['publish_ms']:.0f} "
                f"| {row['cores_busy']:.2f} / {row['cores_worker']:.2f} ({row['cores_worker_main']:.2f} + "
                f"{row['cores_worker'] - row['cores_worker_main']:.2f}) / {row['cores_generator']:.2f}"
                f" / {row['cores_rest']:.2f} |"
            )
        lines.append(
            f"\nload generator: librdkafka, linger.ms {options.latency_linger_ms:g}; before the measured events of each"
            f" run, {options.latency_warmup_seconds:g} s of the same load, not measured"
        )
    print("\n".join(lines))
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    document = {
        "events": total,
        "machine": machine,
        "rows": rows,
        "latency": latencies,
        "latency_linger_ms": options.latency_linger_ms,
        "latency_warmup_seconds": options.latency_warmup_seconds,
    }
    (out / "latest.json").write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()
