"""The baselines the product is measured against, each in its own process: the floor (aiokafka + JSON
decode) and the framework (a bare Faust agent, as Faust ships or with the worker's consumer, sensors,
logging and schema). :func:`measure` runs one as

    .venv/bin/python -m bench.framework floor|framework|framework_lean BOOTSTRAP TOPIC,TOPIC,TOPIC EVENTS

which prints its figures as JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.usage import self_usage
from streams.settings import Settings

FLOOR = "floor: aiokafka + JSON decode"
FRAMEWORK = "framework: bare Faust agent"
KINDS = ("floor", "framework", "framework_lean")


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
    from streams.kafka.transport import RawBytes

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


def measure(kind: str, args: list[str]) -> dict[str, float]:
    """One baseline in a process of its own, so its CPU seconds and peak RSS are its own."""
    completed = subprocess.run(
        [sys.executable, "-m", "bench.framework", kind, *args],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    # Faust's terminal codes may precede the JSON on its line
    lines = [line[line.index('{"seconds"') :] for line in completed.stdout.splitlines() if '{"seconds"' in line]
    if completed.returncode != 0 or not lines:
        raise RuntimeError(f"{kind} failed:\n{completed.stdout[-2000:]}\n{completed.stderr[-2000:]}")
    result: dict[str, float] = json.loads(lines[-1])
    return result


def main(argv: list[str]) -> None:
    kind, bootstrap, topics, total = argv[0], argv[1], argv[2].split(","), int(argv[3])
    if kind not in KINDS:
        raise SystemExit(f"unknown baseline {kind!r}: one of {', '.join(KINDS)}")
    if kind == "floor":
        print(json.dumps(asyncio.run(floor(bootstrap, topics, total))))
    else:
        framework(bootstrap, topics, total, lean=kind == "framework_lean")


if __name__ == "__main__":
    main(sys.argv[1:])
