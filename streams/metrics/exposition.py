"""The ``/metrics`` body: the worker's counters and the read model's gauges in one scrape."""

from __future__ import annotations

import asyncio
from collections.abc import Collection

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric

from streams.metrics.read_model import ReadModelCollector


class _Collected:
    """Families collected earlier, for ``generate_latest`` (which renders anything with ``collect()``)."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


async def scrape(counts: CollectorRegistry, read_model: ReadModelCollector, names: Collection[str] = ()) -> bytes:
    """A ``/metrics`` body; ``names`` selects series (``?name[]=``), as prometheus_client's handler does.

    The counters and histograms are collected here, on the event loop, where batches are counted: a
    scrape shows whole batches. (Collected in a thread, a scrape could show a batch's events but not yet
    its conversion.) The read model's gauges run SQL, so they are collected, and the text rendered, in a
    thread; a poll of counters only is rendered in place, where a thread would cost more."""
    wanted = set(names)
    counted = list((counts.restricted_registry(wanted) if wanted else counts).collect())
    if wanted and wanted.isdisjoint(read_model.names):
        return generate_latest(_Collected(counted))

    def render() -> bytes:
        queried = [family for family in read_model.collect() if not wanted or family.name in wanted]
        return generate_latest(_Collected(counted + queried))

    return await asyncio.to_thread(render)
