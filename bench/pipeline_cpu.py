"""CPU per event of the pipeline process's work alone: ``Pipeline.process`` on a fresh SQLite file, no
Kafka, no worker; the simulator's events in batches of a given size, as the worker hands them over.

    .venv/bin/python bench/pipeline_cpu.py --batch 40,200,2000

Prints, per batch size, CPU ms per batch and µs per event (process time, after a warm-up of 4,000
events), and the statements a batch ran. What a change to the pipeline, the repository or the
validation costs or saves, without the noise of the two cores the worker shares with the broker.
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import orjson  # noqa: E402
from run import simulated  # noqa: E402
from sqlalchemy import event  # noqa: E402

from streams.contract import EVENT_TOPICS  # noqa: E402
from streams.db.engine import make_engine  # noqa: E402
from streams.db.migrations import upgrade  # noqa: E402
from streams.runner import PipelineConfig, PlainMessage, _process  # noqa: E402

WARM_UP = 4_000


def measure(batch: int, events: int) -> tuple[float, collections.Counter[str]]:
    """CPU seconds for ``events`` events after the warm-up, and the statements run per kind."""
    url = f"sqlite:///{tempfile.mkdtemp()}/pipeline.db"
    upgrade(make_engine(url))
    pipeline = PipelineConfig(url, {topic: topic for topic in set(EVENT_TOPICS.values())}, 3.0, 65536).build()
    messages: list[PlainMessage] = [
        (EVENT_TOPICS[document["type"]], 0, offset, document["customer_id"].encode(), orjson.dumps(document), [])
        for offset, document in enumerate(simulated(WARM_UP + events, seed=3))
    ]
    statements: collections.Counter[str] = collections.Counter()

    @event.listens_for(pipeline.repository.engine, "before_cursor_execute")
    def count(_connection: Any, _cursor: Any, statement: str, *_: Any) -> None:
        words = statement.split()
        table = {"INSERT": 2, "UPDATE": 1, "SELECT": words.index("FROM") + 1 if "FROM" in words else 0}
        statements[f"{words[0]} {words[table.get(words[0], 0)]}"] += 1

    for start in range(0, WARM_UP, batch):
        _process(pipeline, messages[start : min(start + batch, WARM_UP)], [])
    statements.clear()
    began = time.process_time()
    for start in range(WARM_UP, len(messages), batch):
        _process(pipeline, messages[start : start + batch], [])
    return time.process_time() - began, statements


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", default="40,200,2000", help="comma-separated batch sizes")
    parser.add_argument("--events", type=int, default=40_000, help="events measured per batch size")
    options = parser.parse_args()
    for batch in (int(size) for size in options.batch.split(",")):
        seconds, statements = measure(batch, options.events)
        batches = -(-options.events // batch)
        per_batch = ", ".join(f"{kind} {count / batches:.1f}" for kind, count in statements.most_common())
        print(
            f"batch {batch}: {1000 * seconds / batches:.2f} ms CPU per batch, "
            f"{1e6 * seconds / options.events:.0f} µs per event; statements per batch: {per_batch}"
        )


if __name__ == "__main__":
    main()
