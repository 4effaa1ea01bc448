"""Faust's Prometheus sensors without the four that run for every message.

Those four (message in/out, stream event in/out) take a fifth of the worker's event loop
(``bench/profile_worker.py``, docs/performance.md), for counts that ``lifecycle_events_total``
already keeps per topic, event type and outcome, once per batch. What stays is what ops use: the
partition end and committed offsets (consumer lag), commits, rebalances and web requests (the
worker's own messages go out as record batches, past the sensor of Faust's per-message send). The
end offset is also set for every message (Faust's ``getmany``): its gauge's child is looked up once
per partition, not per message (4-5 % of the worker under load).
"""

from __future__ import annotations

from typing import Any

from faust.sensors.prometheus import PrometheusMonitor
from faust.types import TP
from prometheus_client import Gauge


class WorkerMonitor(PrometheusMonitor):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._end_offsets: dict[TP, Gauge] = {}

    def track_tp_end_offset(self, tp: TP, offset: int) -> None:
        self.tp_end_offsets[tp] = offset
        gauge = self._end_offsets.get(tp)
        if gauge is None:
            gauge = self._metrics.topic_partition_end_offset.labels(topic=tp.topic, partition=tp.partition)
            self._end_offsets[tp] = gauge
        gauge.set(offset)

    def _clear_partition_related_metrics(self) -> None:
        """At a rebalance Faust removes the partitions' series: the cached children go with them."""
        super()._clear_partition_related_metrics()
        self._end_offsets.clear()

    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        pass

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> None:
        return None

    def on_stream_event_out(self, tp: Any, offset: int, stream: Any, event: Any, state: Any = None) -> None:
        pass

    def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
        pass
