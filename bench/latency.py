"""The product's end-to-end latency at a fixed offered load: each event from its publish to the worker's
/metrics counting it, and where the machine's cores go meanwhile."""

from __future__ import annotations

import json
import os
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

from bench.load import fresh_sqlite, simulated
from bench.usage import TreeUsage, machine_busy, self_usage
from bench.workers import BenchWorker, start_workers, stop_workers, worker_env
from streams.metrics.scraped import metric_value


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

    from streams.kafka.admin import ensure_topics
    from streams.kafka.publisher import event_topics
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
        worker.wait_healthy()  # its web server answers once it runs; then let it join the group
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
        topic_of = event_topics(settings)
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
        warm = batch_totals(worker)  # the warm-up batch waited for the pipeline process to start
        # where the cores go while the load runs: the worker (with its pipeline process), this load
        # generator, and the rest (the broker, mostly)
        tree = TreeUsage(worker.pid)
        watcher.start()
        begin = time.perf_counter()
        for index, (topic, key, value) in enumerate(encoded[1:]):
            if index == warmup:  # the measured part begins: its cores and batches
                tree.sample()
                cpu_before = (machine_busy(), tree.cpu, self_usage()[0], tree.root_cpu)
                measured_from = time.perf_counter()
                if warmup:
                    warm = batch_totals(worker)
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
        batches = [end - start for start, end in zip(warm, batch_totals(worker), strict=True)]
    finally:
        stop_workers([worker])
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


def batch_totals(worker: BenchWorker) -> tuple[float, float, float, float]:
    """The worker's own view of its batches (README, Metrics): how many, their events, each step's time."""
    text = worker.metrics("lifecycle_batch_events_count", "lifecycle_batch_events_sum", "lifecycle_batch_seconds_sum")
    return (
        metric_value(text, "lifecycle_batch_events_count"),
        metric_value(text, "lifecycle_batch_events_sum"),
        metric_value(text, "lifecycle_batch_seconds_sum", step="write"),
        metric_value(text, "lifecycle_batch_seconds_sum", step="publish"),
    )


def latency_rows(
    bootstrap: str,
    topics: list[str],
    loads: list[tuple[float | None, float]],
    *,
    repeat: int,
    events: int,
    linger_ms: float,
    warmup_seconds: float,
    series_path: Path | None = None,
) -> list[dict[str, float]]:
    """A row per offered load, (share of the SQLite row's throughput or None, events/s): the median of
    ``repeat`` runs. ``series_path``: where each run's events' latencies go, as JSON."""
    rows: list[dict[str, float]] = []
    series: list[dict[str, Any]] = []
    for share, rate in loads:
        sent: list[list[float]] = []
        runs = [
            latency(bootstrap, topics, fresh_sqlite(), rate, events, linger_ms, sent, warmup_seconds)
            for _ in range(repeat)
        ]
        series.append({"rate": rate, "runs": sent})
        row = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        rows.append({**row, "share": share} if share is not None else row)
    if series_path:
        series_path.write_text(json.dumps(series) + "\n")
    return rows
