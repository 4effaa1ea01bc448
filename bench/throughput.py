"""Throughput: the baselines and the real `lifecycle worker` through the published stream, on a fresh read
model, with two workers, or on one that already holds many customers; and through the same stream with
poison messages in it, in turn with the clean one."""

from __future__ import annotations

import functools
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from bench.framework import FLOOR, FRAMEWORK, measure
from bench.load import POISON_PIPELINE, fresh_postgres_database, fresh_sqlite, prefilled_sqlite
from bench.usage import TreeUsage
from bench.workers import start_workers, stop_workers, worker_env


def product(
    bootstrap: str,
    topics: list[str],
    total: int,
    database_url: str,
    workers: int = 1,
    in_thread: bool = False,
    window: tuple[float, float] = (0.0, 1.0),
    env: Mapping[str, str] | None = None,
) -> dict[str, float]:
    """``window``: measure between these shares of the events done (the scaling rows use 10-90 %, so
    the second worker's join and the rebalance it causes stay out of both the 1- and 2-worker figure).
    Progress is the workers' own count of committed events (:meth:`BenchWorker.counted`): a ``count(*)``
    of processed events would cost the database more with every stored event. ``env``: more of the
    workers' environment."""
    overrides = {"LIFECYCLE_PIPELINE_PROCESS": "false"} if in_thread else {}
    overrides.update(env or {})
    os.sync()  # the previous rows' (and a copied database's) dirty pages are written back now, not during this one
    running = start_workers(worker_env(bootstrap, topics, database_url, **overrides), workers)
    usages = [TreeUsage(worker.pid) for worker in running]
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
        stop_workers(running)
    return {"seconds": elapsed, "cpu": sum(u.cpu for u in usages), "rss": max(u.rss for u in usages)}


def grown(bootstrap: str, topics: list[str], total: int, template: Path) -> dict[str, float]:
    """The same stream, against a copy of a database that already holds many customers."""
    copy = Path(tempfile.mkdtemp()) / "bench.db"
    shutil.copyfile(template, copy)
    try:
        return product(bootstrap, topics, total, f"sqlite:///{copy}")
    finally:
        shutil.rmtree(copy.parent, ignore_errors=True)


def poison_rows(
    bootstrap: str,
    topics: list[str],
    poisoned_topics: list[str],
    total: int,
    poison: tuple[int, str],
    *,
    repeat: int,
    postgres: str | None,
) -> dict[str, dict[str, float]]:
    """The product on the clean stream (``topics``) and on the poisoned one (``poisoned_topics``, the same
    stream with ``poison``: per thousand, kind), in turn, ``repeat`` times each, on SQLite (and on
    PostgreSQL with ``postgres``), each on a fresh database; the rows are the medians. With write poison,
    the workers of both rows run with ``bench/poison_pipeline`` on ``PYTHONPATH``."""
    per_thousand, kind = poison
    env = {}
    if kind == "write":
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(POISON_PIPELINE), os.environ.get("PYTHONPATH")]))
    databases: list[tuple[str, Callable[[], str]]] = [("SQLite", fresh_sqlite)]
    if postgres:
        databases.append(("PostgreSQL", functools.partial(fresh_postgres_database, postgres)))
    rows: dict[str, dict[str, float]] = {}
    for name, database in databases:
        streams = {"clean": topics, f"{per_thousand} per 1,000 {kind} poison": poisoned_topics}
        runs: dict[str, list[dict[str, float]]] = {stream: [] for stream in streams}
        for _ in range(repeat):
            for stream, stream_topics in streams.items():
                runs[stream].append(product(bootstrap, stream_topics, total, database(), env=env))
        for stream, measured in runs.items():
            rows[f"poison: product: {name}, {stream}"] = {
                key: statistics.median(r[key] for r in measured) for key in ("seconds", "cpu", "rss")
            }
    return rows


def throughput_rows(
    bootstrap: str,
    topics: list[str],
    total: int,
    *,
    sections: set[str],
    repeat: int,
    postgres: str | None,
    growth: list[int],
    poison: tuple[int, str] | None = None,
    poisoned_topics: list[str] | None = None,
) -> dict[str, dict[str, float]]:
    """The rows of ``sections`` (throughput, scaling, growth), and the floor's and the framework's always:
    every row is shown relative to them. Each row is the median of ``repeat`` runs; the PostgreSQL rows
    need ``postgres``, a server URL. Section poison: :func:`poison_rows`, with ``poison`` and
    ``poisoned_topics``."""
    args = [bootstrap, ",".join(topics), str(total)]
    plan: list[tuple[str, str, Callable[[], dict[str, float]]]] = [
        ("throughput", FLOOR, lambda: measure("floor", args)),
        ("throughput", FRAMEWORK, lambda: measure("framework", args)),
        ("throughput", f"{FRAMEWORK}, our consumer, sensors and schema", lambda: measure("framework_lean", args)),
        ("throughput", "product: SQLite", lambda: product(bootstrap, topics, total, fresh_sqlite())),
        (
            "throughput",
            "product: SQLite, pipeline in a worker thread",
            lambda: product(bootstrap, topics, total, fresh_sqlite(), in_thread=True),
        ),
    ]
    if postgres:
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
    for stored in growth if "growth" in sections else []:
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
            runs = [run() for _ in range(repeat)]
            rows[label] = {key: statistics.median(r[key] for r in runs) for key in ("seconds", "cpu", "rss")}
    if "poison" in sections and poison is not None and poisoned_topics is not None:
        rows |= poison_rows(bootstrap, topics, poisoned_topics, total, poison, repeat=repeat, postgres=postgres)
    return rows
