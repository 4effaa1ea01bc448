"""Benchmarks of the worker, run as modules from the repository's root:

.venv/bin/python -m bench.run            # floor, framework and product: throughput, growth, latency
.venv/bin/python -m bench.pipeline_cpu   # the pipeline process's work alone, per event
.venv/bin/python -m bench.profile_worker # where a worker's time goes (py-spy)
"""

from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
