"""CPU per event of the pipeline process's work alone: ``Pipeline.process`` on a fresh SQLite file (or a
fresh PostgreSQL database), no Kafka, no worker; the simulator's events in batches of a given size, as
the worker hands them over.

    .venv/bin/python -m bench.pipeline_cpu --batch 40,200,2000
    .venv/bin/python -m bench.pipeline_cpu --batch 2000 --postgres postgresql+psycopg://…
    .venv/bin/python -m bench.pipeline_cpu --batch 200 --instructions     # ~2 min; needs valgrind

Prints, per batch size, CPU ms per batch and µs per event (process time, after a warm-up of 4,000
events), the statements a batch ran, and the rows and values it wrote. What a change to the pipeline,
the repository or the validation costs or saves, without the noise of the two cores the worker shares
with the broker.

CPU seconds still follow the VM's speed, which drifts by up to 1.7x within a minute (a pure-Python
loop measured at 165-290 ms, run after run). ``--instructions`` counts the user-space instructions per
event instead (valgrind's cachegrind, two runs ``--events`` apart, so start-up and warm-up cancel out):
the same on a busy or an idle machine, and from run to run (``--hash-seed`` fixes ``PYTHONHASHSEED``,
default 0: runs with seed 0 agree within 0.1 %, and seeds 0, 1 and 2 within 0.1 % at 146 a batch; before
this script took the pipeline process's collector settings, three runs of one code with random seeds
spread 328,119 to 339,456). It leaves out the kernel's share (the commit's writes), about 7 % of the
CPU time.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import event

from bench.load import fresh_postgres_database, simulated
from streams.contract.vocabulary import EVENT_TOPICS
from streams.db.engine import make_engine
from streams.db.migrations import upgrade
from streams.pipeline.runner import PlainMessage, _process, tune_collector
from streams.pipeline.service import PipelineConfig
from streams.settings import Settings

WARM_UP = 4_000


def measure(
    batch: int, events: int, state_cache: int, simulated_events: int = 0, postgres: str | None = None
) -> tuple[float, float, collections.Counter[str], collections.Counter[str]]:
    """CPU and wall seconds for ``events`` events after the warm-up, the statements run per kind, and the
    rows and the values the INSERTs and UPDATEs wrote (``rows``, ``values``).
    ``simulated_events``: how many the simulator makes (at least ``events``), so that two runs can
    differ in the events processed alone. ``postgres``: a server URL; a fresh database on it instead of
    SQLite."""
    url = fresh_postgres_database(postgres) if postgres else f"sqlite:///{tempfile.mkdtemp()}/pipeline.db"
    upgrade(make_engine(url))
    topics = {topic: topic for topic in set(EVENT_TOPICS.values())}
    pipeline = PipelineConfig(url, topics, 3.0, 65536, state_cache).build()
    messages: list[PlainMessage] = [
        (EVENT_TOPICS[document["type"]], 0, offset, document["customer_id"].encode(), orjson.dumps(document), [])
        for offset, document in enumerate(simulated(WARM_UP + max(events, simulated_events), seed=3))
    ]
    statements: collections.Counter[str] = collections.Counter()
    written: collections.Counter[str] = collections.Counter()

    @event.listens_for(pipeline.repository.engine, "before_cursor_execute")
    def count(_connection: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, many: bool) -> None:
        words = statement.split()
        table = {"INSERT": 2, "UPDATE": 1, "SELECT": words.index("FROM") + 1 if "FROM" in words else 0}
        statements[f"{words[0]} {words[table.get(words[0], 0)]}"] += 1
        if words[0] in ("INSERT", "UPDATE"):
            rows = parameters if many else [parameters]
            written["rows"] += len(rows)
            written["values"] += sum(len(row) for row in rows)

    tune_collector()  # as the pipeline process runs
    for start in range(0, WARM_UP, batch):
        _process(pipeline, messages[start : min(start + batch, WARM_UP)], [])
    statements.clear()
    written.clear()
    began, began_wall = time.process_time(), time.perf_counter()
    for start in range(WARM_UP, WARM_UP + events, batch):
        _process(pipeline, messages[start : min(start + batch, WARM_UP + events)], [])
    return time.process_time() - began, time.perf_counter() - began_wall, statements, written


def instructions(batch: int, events: int, state_cache: int, hash_seed: int) -> float:
    """User-space instructions per event: this script under valgrind, for half of ``events`` and for all
    of them, from the same simulated stream; the difference is the second half's events alone."""
    counts = []
    for measured in (events // 2, events):
        valgrind = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null"]
        here = [sys.executable, "-m", "bench.pipeline_cpu", "--batch", str(batch), "--events", str(measured)]
        here += ["--state-cache-customers", str(state_cache)]
        run = subprocess.run(
            [*valgrind, *here, "--simulated-events", str(events)],
            env={**os.environ, "PYTHONHASHSEED": str(hash_seed)},
            cwd=Path(__file__).resolve().parents[1],
            capture_output=True,
            text=True,
            check=True,
        )
        found = re.search(r"I\s+refs:\s+([\d,]+)", run.stderr)
        if found is None:
            raise RuntimeError(f"no instruction count in valgrind's output: {run.stderr[-500:]}")
        counts.append(int(found.group(1).replace(",", "")))
    return (counts[1] - counts[0]) / (events - events // 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", default="40,200,2000", help="comma-separated batch sizes")
    parser.add_argument(
        "--events", type=int, help="events measured per batch size (default 40,000; 4,000 with --instructions)"
    )
    parser.add_argument("--instructions", action="store_true", help="instructions per event, by valgrind")
    parser.add_argument(
        "--state-cache-customers",
        type=int,
        default=Settings.model_fields["state_cache_customers"].default,
        help="customers kept between batches (LIFECYCLE_STATE_CACHE_CUSTOMERS; default: the worker's)",
    )
    parser.add_argument(
        "--hash-seed", type=int, default=0, help="PYTHONHASHSEED of the runs --instructions counts (default 0)"
    )
    parser.add_argument(
        "--postgres",
        help="a PostgreSQL server URL: a fresh database there instead of SQLite (its server's work shows in "
        "the wall time, not in the CPU time)",
    )
    parser.add_argument("--simulated-events", type=int, default=0, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.instructions:
        for batch in (int(size) for size in options.batch.split(",")):
            count = instructions(batch, options.events or 4_000, options.state_cache_customers, options.hash_seed)
            print(f"batch {batch}: {count:,.0f} instructions per event")
        return
    options.events = options.events or 40_000
    for batch in (int(size) for size in options.batch.split(",")):
        seconds, wall, statements, written = measure(
            batch, options.events, options.state_cache_customers, options.simulated_events, options.postgres
        )
        batches = -(-options.events // batch)
        per_batch = ", ".join(f"{kind} {count / batches:.1f}" for kind, count in statements.most_common())
        print(
            f"batch {batch}: {1000 * seconds / batches:.2f} ms CPU per batch, "
            f"{1e6 * seconds / options.events:.0f} µs per event ({1e6 * wall / options.events:.0f} µs wall, "
            f"{options.events / wall:,.0f} events/s); per batch: rows written "
            f"{written['rows'] / batches:.1f}, values written {written['values'] / batches:.1f}; "
            f"statements per batch: {per_batch}"
        )


if __name__ == "__main__":
    main()
