"""A pipeline that does nothing, for the latency's floor. On ``PYTHONPATH``, every Python process started
with it (the benchmark's workers and their pipeline processes) gets a ``Pipeline.process`` that decodes
nothing and writes nothing; what is left of the end-to-end latency is Kafka, Faust, the worker's
batching and the hand-over to the pipeline process (README, Performance):

    PYTHONPATH=bench/null_pipeline .venv/bin/python -m bench.run --events 1000 --sections latency \\
        --latency-rate 4300 --repeat 3
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from streams.pipeline import service as pipeline


def _nothing(self: Any, messages: Sequence[Any], *, published: Sequence[str] = (), **_: Any) -> pipeline.BatchResult:
    return pipeline.BatchResult()


pipeline.Pipeline.process = _nothing  # type: ignore[method-assign]
