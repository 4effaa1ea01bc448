"""Throughput benchmark: the floor (aiokafka + JSON decode), the framework (a bare Faust agent) and the
product (the real `lifecycle worker` on SQLite and PostgreSQL), on one broker, with the same events.

    .venv/bin/python bench/run.py --events 50000 --repeat 3 [--postgres postgresql+psycopg://...]

Prints a table and writes bench/results/latest.json. Each measurement runs in its own process; its
time runs from the first to the last event handled (start-up excluded), CPU seconds and peak RSS are
the process's own (/proc). The median of the repeats is reported.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streams.broker import LocalKafka, free_port  # noqa: E402
from streams.settings import Settings  # noqa: E402

TOPICS = ("leads", "deals", "tickets")


def proc_usage(pid: int) -> tuple[float, float]:
    """(CPU seconds, peak RSS MiB) of a live process."""
    ticks = os.sysconf("SC_CLK_TCK")
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    hwm = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("VmHWM"))
    return cpu, int(hwm.split()[1]) / 1024


def self_usage() -> tuple[float, float]:
    return proc_usage(os.getpid())


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


def framework(bootstrap: str, topics: list[str], total: int) -> dict[str, float]:
    import faust

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
    source = app.topic(*topics, key_serializer="raw", value_serializer="raw")
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

    worker = faust.Worker(app, loglevel="error", quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()
    return result


def product(bootstrap: str, topics: list[str], total: int, database_url: str) -> dict[str, float]:
    from sqlalchemy import func, select
    from sqlalchemy.orm import Session

    from streams.db.engine import make_engine
    from streams.db.models import ProcessedEvent

    data = Path(tempfile.mkdtemp())
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "LIFECYCLE_DATABASE_URL": database_url,
        "LIFECYCLE_DATA_DIR": str(data),
        "LIFECYCLE_APP_ID": f"bench-{uuid.uuid4().hex[:8]}",
        "LIFECYCLE_WEB_PORT": str(free_port()),
        "LIFECYCLE_TOPIC_LEADS": topics[0],
        "LIFECYCLE_TOPIC_DEALS": topics[1],
        "LIFECYCLE_TOPIC_TICKETS": topics[2],
        "LIFECYCLE_TOPIC_LIFECYCLE": f"{topics[0]}-out",
        "LIFECYCLE_TOPIC_DLQ": f"{topics[0]}-dlq",
        "LIFECYCLE_LOG_LEVEL": "warning",
    }
    worker = subprocess.Popen(
        [str(Path(sys.executable).with_name("lifecycle")), "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    engine = make_engine(database_url)
    started = 0.0
    usage = (0.0, 0.0)
    try:
        while True:
            try:
                with Session(engine) as session:
                    done = int(session.scalar(select(func.count()).select_from(ProcessedEvent)) or 0)
            except Exception:
                done = 0
            now = time.perf_counter()
            if done and not started:
                started = now
            usage = proc_usage(worker.pid)
            if done >= total:
                break
            time.sleep(0.05)  # polling the database, the only view into the worker's progress
        elapsed = time.perf_counter() - started
    finally:
        worker.terminate()
        worker.wait(60)
    cpu, rss = usage
    return {"seconds": elapsed, "cpu": cpu, "rss": rss}


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
        elif kind == "_framework":
            framework(bootstrap, topics, total)
        else:
            print(json.dumps(product(bootstrap, topics, total, sys.argv[5])))
        return
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--postgres", default=os.environ.get("LIFECYCLE_TEST_POSTGRES_URL"))
    options = parser.parse_args()

    from streams.kafka_admin import ensure_topics
    from streams.publisher import EventPublisher
    from streams.simulator import simulate

    broker = None
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or ""
    if not bootstrap:
        broker = LocalKafka(Path(tempfile.mkdtemp()) / "kafka").start()
        bootstrap = broker.bootstrap_servers
    try:
        suffix = uuid.uuid4().hex[:8]
        topics = [f"bench-{name}-{suffix}" for name in TOPICS]
        os.environ["KAFKA_BOOTSTRAP_SERVERS"] = bootstrap
        settings = Settings(topic_leads=topics[0], topic_deals=topics[1], topic_tickets=topics[2])
        ensure_topics(settings, topics)
        customers = max(1, options.events * 10 // 54)
        events = simulate(customers, seed=1).events[: options.events]
        with EventPublisher(settings) as publisher:
            for document in events:
                publisher.publish(document)
        total = len(events)
        rows: dict[str, dict[str, float]] = {}
        plan: list[tuple[str, str, list[str]]] = [
            ("floor: aiokafka + JSON decode", "floor", []),
            ("framework: bare Faust agent", "framework", []),
            ("product: SQLite", "product", [f"sqlite:///{tempfile.mkdtemp()}/bench.db"]),
        ]
        if options.postgres:
            plan.append(("product: PostgreSQL", "product", [options.postgres]))
        for label, kind, extra in plan:
            runs = []
            for _ in range(options.repeat):
                extra_args = extra
                if kind == "product" and extra[0].startswith("sqlite"):
                    extra_args = [f"sqlite:///{tempfile.mkdtemp()}/bench.db"]
                elif kind == "product":
                    extra_args = [fresh_postgres_database(extra[0])]
                runs.append(measure(kind, [bootstrap, ",".join(topics), str(total), *extra_args]))
            rows[label] = {key: statistics.median(run[key] for run in runs) for key in ("seconds", "cpu", "rss")}
        report(rows, total, options)
    finally:
        if broker is not None:
            broker.stop()


def fresh_postgres_database(server_url: str) -> str:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))  # our own generated name
    admin.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def report(rows: dict[str, dict[str, float]], total: int, options: argparse.Namespace) -> None:
    floor_rate = total / rows["floor: aiokafka + JSON decode"]["seconds"]
    framework_rate = total / rows["framework: bare Faust agent"]["seconds"]
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
    print("\n".join(lines))
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.json").write_text(json.dumps({"events": total, "machine": machine, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
