"""Benchmark: the floor (aiokafka + JSON decode), the framework (a bare Faust agent) and the product
(the real `lifecycle worker` on SQLite and PostgreSQL), on one broker, with the same events; then the
product's end-to-end latency at fixed offered loads (README, Performance).

    .venv/bin/python -m bench.run --events 50000 --repeat 3 [--postgres postgresql+psycopg://...]
    .venv/bin/python -m bench.run --events 40000 --sections poison --poison-per-thousand 1 --poison-kind write

Prints tables and writes bench/results/latest.json. Each measurement runs in its own process; its
time runs from the first to the last event handled (start-up excluded), CPU seconds and peak RSS are
the process's own (/proc). The median of the repeats is reported. With ``--poison-per-thousand``, the
same stream with poison messages in it (``bench.load.poisoned``) is published too, and section poison
runs the product on the clean and the poisoned stream in turn, and prints the ratio.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from bench.latency import latency_rows
from bench.load import POISON_KINDS, publish_poisoned, published_stream
from bench.report import report
from bench.throughput import throughput_rows

SECTIONS = ("throughput", "scaling", "growth", "latency", "poison")


def main() -> None:
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
    parser.add_argument(
        "--poison-per-thousand",
        type=int,
        default=0,
        help="section poison: the product on a clean and a poisoned stream in turn (default 0: no section poison)",
    )
    parser.add_argument(
        "--poison-kind",
        choices=POISON_KINDS,
        default="contract",
        help="contract: refused at decoding; write: makes the write fail, bisected (bench/poison_pipeline)",
    )
    options = parser.parse_args()
    sections = set(options.sections.split(","))
    if not 0 <= options.poison_per_thousand <= 1000:
        parser.error("--poison-per-thousand is between 0 and 1000")
    poison = (options.poison_per_thousand, options.poison_kind) if options.poison_per_thousand else None

    with published_stream("bench", options.events) as (bootstrap, topics, total):
        poisoned_topics = None
        if poison is not None and "poison" in sections:
            poisoned_topics = publish_poisoned(bootstrap, "bench-poison", options.events, *poison)
        rows = throughput_rows(
            bootstrap,
            topics,
            total,
            sections=sections,
            repeat=options.repeat,
            postgres=options.postgres,
            growth=[int(n) for n in options.growth.split(",")],
            poison=poison,
            poisoned_topics=poisoned_topics,
        )
        latencies: list[dict[str, float]] = []
        if "latency" in sections:
            loads: list[tuple[float | None, float]]
            if options.latency_rate:
                loads = [(None, options.latency_rate)]
            else:
                sqlite_rate = total / rows["product: SQLite"]["seconds"]
                loads = [(float(share), float(share) * sqlite_rate) for share in options.latency_loads.split(",")]
            latencies = latency_rows(
                bootstrap,
                topics,
                loads,
                repeat=options.repeat,
                events=options.latency_events,
                linger_ms=options.latency_linger_ms,
                warmup_seconds=options.latency_warmup_seconds,
                series_path=options.latency_series,
            )
        report(rows, latencies, total, options)


if __name__ == "__main__":
    main()
