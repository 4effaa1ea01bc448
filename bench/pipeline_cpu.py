"""CPU per event of the pipeline process's work alone: ``Pipeline.process`` on a fresh SQLite file (or a
fresh PostgreSQL database), no Kafka, no worker; the simulator's events in batches of a given size, as
the worker hands them over.

    .venv/bin/python -m bench.pipeline_cpu --batch 40,200,2000
    .venv/bin/python -m bench.pipeline_cpu --batch 2000 --postgres postgresql+psycopg://…
    .venv/bin/python -m bench.pipeline_cpu --batch 200 --instructions     # ~2 min; needs valgrind
    .venv/bin/python -m bench.pipeline_cpu --batch 200,2000 --poison-per-thousand 1 --poison-kind contract
    PYTHONPATH=bench/poison_pipeline .venv/bin/python -m bench.pipeline_cpu --batch 200,2000 \\
        --poison-per-thousand 1 --poison-kind write

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

``--poison-per-thousand N`` measures what poison messages cost: per batch size, a clean run not
counted, then ``--rounds`` pairs of runs, a clean stream then a poisoned one (clean, poisoned, clean,
poisoned, ...), each on a fresh database, and the ratio poisoned/clean of the medians. Both are
``--events`` messages after the same clean warm-up; in the poisoned one, N in each 1,000 are poison
(``bench.load.poisoned``): of ``--poison-kind contract``, refused at decoding (a NUL in
``customer_id``, an ``occurred_at`` before year 1 in UTC, a currency not in ISO 4217, in turn), or
``write``, which pass the contract and make the transaction fail (``"bench_poison": true``, with
``PYTHONPATH=bench/poison_pipeline``, whose sitecustomize the clean runs go through too): the batch is
bisected down to them. Each run prints events/s (wall), µs CPU per event, the transactions committed
and rolled back, the statements and the dead letters.
"""

from __future__ import annotations

import argparse
import collections
import gc
import logging
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import event

from bench.load import POISON_KINDS, Keyed, fresh_postgres_database, poisoned, simulated
from streams.contract.vocabulary import EVENT_TOPICS
from streams.db.engine import make_engine
from streams.db.migrations import upgrade
from streams.pipeline.runner import PlainMessage, _process, tune_collector
from streams.pipeline.service import PipelineConfig
from streams.settings import Settings

WARM_UP = 4_000


@dataclass
class Measured:
    """One run: CPU and wall seconds of the measured messages, the statements run per kind, the rows and
    values the INSERTs and UPDATEs wrote (``rows``, ``values``), the transactions committed and rolled
    back, and the dead letters per error class."""

    cpu: float
    wall: float
    statements: collections.Counter[str] = field(default_factory=collections.Counter)
    written: collections.Counter[str] = field(default_factory=collections.Counter)
    transactions: collections.Counter[str] = field(default_factory=collections.Counter)
    dead_letters: collections.Counter[str] = field(default_factory=collections.Counter)


@cache
def _documents(count: int) -> list[dict[str, Any]]:
    """The simulator's stream, made once per process: never changed, the poisoned copies are new dicts."""
    return simulated(count, seed=3)


def _messages(keyed: Sequence[Keyed], first_offset: int) -> list[PlainMessage]:
    return [
        (EVENT_TOPICS[document["type"]], 0, offset, key.encode(), orjson.dumps(document), [])
        for offset, (document, key) in enumerate(keyed, first_offset)
    ]


def measure(
    batch: int,
    events: int,
    state_cache: int,
    simulated_events: int = 0,
    postgres: str | None = None,
    poison: tuple[int, str] | None = None,
) -> Measured:
    """A run of ``events`` messages after the warm-up, on a fresh database.
    ``simulated_events``: how many the simulator makes (at least ``events``), so that two runs can
    differ in the events processed alone. ``postgres``: a server URL; a fresh database on it instead of
    SQLite. ``poison``: (per thousand, kind): the measured messages are :func:`poisoned`."""
    gc.collect()  # runs one after the other in one process start alike: the last one's garbage is gone
    url = fresh_postgres_database(postgres) if postgres else f"sqlite:///{tempfile.mkdtemp()}/pipeline.db"
    upgrade(make_engine(url))
    topics = {topic: topic for topic in set(EVENT_TOPICS.values())}
    pipeline = PipelineConfig(url, topics, 3.0, 65536, state_cache).build()
    documents = _documents(WARM_UP + max(events, simulated_events))
    clean = [(document, document["customer_id"]) for document in documents[: WARM_UP + events]]
    measured = poisoned(documents[WARM_UP : WARM_UP + events], *poison) if poison else clean[WARM_UP:]
    messages = _messages(clean[:WARM_UP], 0) + _messages(measured, WARM_UP)
    run = Measured(0.0, 0.0)

    @event.listens_for(pipeline.repository.engine, "before_cursor_execute")
    def count(_connection: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, many: bool) -> None:
        words = statement.split()
        table = {"INSERT": 2, "UPDATE": 1, "SELECT": words.index("FROM") + 1 if "FROM" in words else 0}
        run.statements[f"{words[0]} {words[table.get(words[0], 0)]}"] += 1
        if words[0] in ("INSERT", "UPDATE"):
            rows = parameters if many else [parameters]
            run.written["rows"] += len(rows)
            run.written["values"] += sum(len(row) for row in rows)

    @event.listens_for(pipeline.repository.engine, "commit")
    def committed(_connection: Any) -> None:
        run.transactions["committed"] += 1

    @event.listens_for(pipeline.repository.engine, "rollback")
    def rolled_back(_connection: Any) -> None:
        run.transactions["rolled back"] += 1

    tune_collector()  # as the pipeline process runs
    settled: list[str] = []  # as the worker names its batches and settles the previous one's kept parts

    def process(chunk: list[PlainMessage]) -> Any:
        batch_id = f"bench-{len(settled)}"
        result = _process(pipeline, chunk, [], batch_id, settled[-1:])
        settled.append(batch_id)
        return result

    for start in range(0, WARM_UP, batch):
        process(messages[start : min(start + batch, WARM_UP)])
    run.statements.clear()
    run.written.clear()
    run.transactions.clear()
    results = []
    began, began_wall = time.process_time(), time.perf_counter()
    for start in range(WARM_UP, WARM_UP + events, batch):
        results.append(process(messages[start : min(start + batch, WARM_UP + events)]))
    run.cpu, run.wall = time.process_time() - began, time.perf_counter() - began_wall
    for result in results:
        run.dead_letters.update(letter.error_class.value for letter in result.dead_letters)
    pipeline.repository.engine.dispose()
    return run


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


def _summary(run: Measured, events: int) -> str:
    letters = ", ".join(f"{count} {kind}" for kind, count in sorted(run.dead_letters.items())) or "none"
    return (
        f"{events / run.wall:,.0f} events/s, {1e6 * run.cpu / events:.1f} µs CPU per event; transactions "
        f"{run.transactions['committed']} committed, {run.transactions['rolled back']} rolled back; "
        f"statements {run.statements.total()}; dead letters: {letters}"
    )


def poison_pairs(batch: int, options: argparse.Namespace) -> float:
    """``options.rounds`` pairs of runs, clean then poisoned, printed as they end; returns the ratio
    poisoned/clean of the median events/s."""
    poison = (options.poison_per_thousand, options.poison_kind)
    rates: dict[str, list[float]] = {"clean": [], "poisoned": []}
    cpu: dict[str, list[float]] = {"clean": [], "poisoned": []}
    database = "PostgreSQL" if options.postgres else "SQLite"
    print(f"batch {batch}, {database}, {options.events:,} messages a run; poisoned: {poison[0]} per 1,000 {poison[1]}")
    # not counted: twice, a process's first run at a batch of 2,000 ran slower than all its next ones
    # (17,651 events/s against 20,039-28,221, clean and poisoned alike), and it would be a clean one
    first = measure(batch, options.events, options.state_cache_customers, postgres=options.postgres)
    print(f"  0 clean   : {_summary(first, options.events)} (not counted)", flush=True)
    for round_ in range(1, options.rounds + 1):
        for stream, poisoning in (("clean", None), ("poisoned", poison)):
            run = measure(
                batch, options.events, options.state_cache_customers, postgres=options.postgres, poison=poisoning
            )
            rates[stream].append(options.events / run.wall)
            cpu[stream].append(1e6 * run.cpu / options.events)
            print(f"  {round_} {stream:8}: {_summary(run, options.events)}", flush=True)
    ratio = statistics.median(rates["poisoned"]) / statistics.median(rates["clean"])
    pairs = ", ".join(f"{p / c:.3f}" for c, p in zip(rates["clean"], rates["poisoned"], strict=True))
    print(
        f"  poisoned/clean: events/s {ratio:.3f} (medians; round by round {pairs}), "
        f"µs CPU per event {statistics.median(cpu['poisoned']) / statistics.median(cpu['clean']):.3f}"
    )
    return ratio


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
    parser.add_argument(
        "--poison-per-thousand",
        type=int,
        default=0,
        help="poison messages per 1,000: runs a clean and a poisoned stream in turn, --rounds times (default 0)",
    )
    parser.add_argument(
        "--poison-kind",
        choices=POISON_KINDS,
        default="contract",
        help="contract: refused at decoding; write: makes the write fail, bisected (needs "
        "PYTHONPATH=bench/poison_pipeline); default contract",
    )
    parser.add_argument("--rounds", type=int, default=2, help="pairs of clean and poisoned runs (default 2)")
    parser.add_argument("--simulated-events", type=int, default=0, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.poison_per_thousand:
        if options.instructions or options.simulated_events:
            parser.error("--poison-per-thousand measures wall and CPU time, not --instructions")
        if not 0 < options.poison_per_thousand <= 1000:
            parser.error("--poison-per-thousand is between 1 and 1000")
        if options.poison_kind == "write" and not getattr(sys.modules.get("sitecustomize"), "POISONED", False):
            parser.error("--poison-kind write needs PYTHONPATH=bench/poison_pipeline (its sitecustomize)")
        # the bisection's warnings, formatted and written as the worker does, to nowhere
        logging.basicConfig(
            level=logging.WARNING,
            format="[%(asctime)s] %(levelname)s %(name)s: %(message)s",
            stream=open(os.devnull, "w"),  # noqa: SIM115 -- open for the process's life
        )
        options.events = options.events or 40_000
        for batch in (int(size) for size in options.batch.split(",")):
            poison_pairs(batch, options)
        return
    if options.instructions:
        for batch in (int(size) for size in options.batch.split(",")):
            count = instructions(batch, options.events or 4_000, options.state_cache_customers, options.hash_seed)
            print(f"batch {batch}: {count:,.0f} instructions per event")
        return
    options.events = options.events or 40_000
    for batch in (int(size) for size in options.batch.split(",")):
        run = measure(batch, options.events, options.state_cache_customers, options.simulated_events, options.postgres)
        batches = -(-options.events // batch)
        per_batch = ", ".join(f"{kind} {count / batches:.1f}" for kind, count in run.statements.most_common())
        print(
            f"batch {batch}: {1000 * run.cpu / batches:.2f} ms CPU per batch, "
            f"{1e6 * run.cpu / options.events:.0f} µs per event ({1e6 * run.wall / options.events:.0f} µs wall, "
            f"{options.events / run.wall:,.0f} events/s); per batch: rows written "
            f"{run.written['rows'] / batches:.1f}, values written {run.written['values'] / batches:.1f}; "
            f"statements per batch: {per_batch}"
        )


if __name__ == "__main__":
    main()
