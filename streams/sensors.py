"""Faust's Prometheus sensors without the four that run for every message.

Those four (message in/out, stream event in/out) took a fifth of the worker's event loop
(``bench/profile_worker.py``, README "Performance"), for counts that ``lifecycle_events_total``
already keeps per topic, event type and outcome, once per batch. What stays is what ops use: the
partition end and committed offsets (consumer lag), commits, rebalances, produced messages and
web requests.
"""

from __future__ import annotations

from typing import Any

from faust.sensors.prometheus import PrometheusMonitor


class WorkerMonitor(PrometheusMonitor):
    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        pass

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> None:
        return None

    def on_stream_event_out(self, tp: Any, offset: int, stream: Any, event: Any, state: Any = None) -> None:
        pass

    def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
        pass
