"""Where a worker's time goes: py-spy on `lifecycle worker` (and its pipeline process) while it works
through the benchmark stream on SQLite.

    .venv/bin/python -m bench.profile_worker --events 50000 --seconds 15

Writes py-spy's collapsed stacks to bench/results/profile-raw.txt (any flamegraph tool renders them)
and prints, per process, the share of sampled time by part of the system. Needs ptrace rights (root,
or kernel.yama.ptrace_scope=0).
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import RESULTS
from bench.load import published_stream
from bench.workers import start_workers, stop_workers, worker_env

# (part, markers in the stack); the first match wins, in this order: the pipeline's own parts first,
# since every frame of the pipeline process sits under multiprocessing's
PARTS = [
    ("pipeline: decode + validate", ("decode_message",)),
    ("pipeline: domain rules", ("Journeys.apply",)),
    ("pipeline: SQL (SQLAlchemy + driver)", ("sqlalchemy",)),
    ("pipeline: batch logic (pipeline, repository)", ("Pipeline.process", "Repository.")),
    ("waiting (idle)", ("select (selectors", "Condition.wait", "wait (multiprocessing", "recv (multiprocessing")),
    ("process hand-over (pickle, pipes)", ("multiprocessing", "concurrent/futures")),
    ("Faust: consumer (fetch, drain, dispatch)", ("Fetcher._fetcher", "_drain_messages", "on_message")),
    ("Faust: stream, take buffer, acks", ("_passive_drainer", "_c_aiter", "Stream.ack")),
    ("ours: publish transitions / dead letters", ("publish_transitions", "_publish_dead_letters")),
    ("ours: metrics", ("LifecycleMetrics.record",)),
    ("ours: batch writer", ("BatchWriter", "BatchHandler")),
    ("Kafka client (aiokafka)", ("aiokafka",)),
]


def summarize(raw: Path) -> str:
    by_process: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        process = "pipeline process" if "spawn_main" in stack else "worker"
        part = next((name for name, markers in PARTS if any(m in stack for m in markers)), "other")
        by_process[process][part] += int(count)
    lines = []
    for process, parts in sorted(by_process.items(), reverse=True):
        total = sum(parts.values())
        lines.append(f"{process}: {total} samples")
        lines += [f"  {100 * n / total:5.1f} %  {part}" for part, n in parts.most_common()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--seconds", type=int, default=20)
    options = parser.parse_args()

    with published_stream("profile", options.events) as (bootstrap, topics, _):
        worker = start_workers(worker_env(bootstrap, topics, f"sqlite:///{tempfile.mkdtemp()}/profile.db"), 1)[0]
        raw = RESULTS / "profile-raw.txt"
        raw.parent.mkdir(parents=True, exist_ok=True)
        try:
            time.sleep(5)  # start-up and the first rebalance are not what this profiles
            spy = str(Path(sys.executable).with_name("py-spy"))
            command = [spy, "record", "--pid", str(worker.pid), "--subprocesses", "--rate", "100",
                       "--format", "raw", "--output", str(raw), "--duration", str(options.seconds)]  # fmt: skip
            subprocess.run(command, check=True, capture_output=True)
        finally:
            stop_workers([worker])
        print(summarize(raw))


if __name__ == "__main__":
    main()
