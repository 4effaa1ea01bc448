"""Faust's sensors as the worker uses them: the lag series stay, the per-message ones are off."""

from __future__ import annotations

from types import SimpleNamespace

from faust.sensors.prometheus import FaustMetrics
from faust.types import TP, Message
from prometheus_client import CollectorRegistry

from streams.kafka.sensors import WorkerMonitor

LEADS = TP("leads", 2)


def test_lag_series_are_kept_and_per_message_sensors_do_nothing() -> None:
    registry = CollectorRegistry()
    monitor = WorkerMonitor(metrics=FaustMetrics.create(registry, "faust"))
    message = Message("leads", 2, 7, 0.0, 0, [], b"k", b"v", None, tp=LEADS)

    monitor.on_message_in(LEADS, 7, message)
    monitor.on_stream_event_in(LEADS, 7, object(), object())
    monitor.on_stream_event_out(LEADS, 7, object(), object(), None)
    monitor.on_message_out(LEADS, 7, message)
    monitor.track_tp_end_offset(LEADS, 120)
    monitor.on_tp_commit({LEADS: 100})

    labels = {"topic": "leads", "partition": "2"}
    assert registry.get_sample_value("faust_topic_partition_end_offset", labels) == 120
    assert registry.get_sample_value("faust_topic_partition_offset_commited", labels) == 100
    assert registry.get_sample_value("faust_messages_received_total") == 0
    assert registry.get_sample_value("faust_total_events_total") == 0
    assert monitor.messages_received_total == 0 and monitor.events_total == 0


def test_end_offsets_are_reported_again_after_a_rebalance_clears_them() -> None:
    registry = CollectorRegistry()
    monitor = WorkerMonitor(metrics=FaustMetrics.create(registry, "faust"))
    labels = {"topic": "leads", "partition": "2"}
    monitor.track_tp_end_offset(LEADS, 120)

    monitor.on_rebalance_start(SimpleNamespace(rebalancing_count=1))  # type: ignore[arg-type]
    assert registry.get_sample_value("faust_topic_partition_end_offset", labels) is None
    monitor.track_tp_end_offset(LEADS, 130)

    assert registry.get_sample_value("faust_topic_partition_end_offset", labels) == 130
    assert monitor.tp_end_offsets[LEADS] == 130
