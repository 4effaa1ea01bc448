from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import orjson
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from sqlalchemy import Engine

from streams.contract.messages import RawMessage
from streams.contract.vocabulary import EVENT_TOPICS, TICKET_CHANNELS
from streams.db.engine import make_engine
from streams.db.migrations import upgrade
from streams.db.repository import Repository
from streams.domain.journey import UNKNOWN
from streams.domain.stages import Stage
from streams.metrics.exposition import scrape
from streams.metrics.instruments import LifecycleMetrics
from streams.metrics.labels import OTHER_OWNER, BoundedLabel
from streams.metrics.quotas import Quotas
from streams.metrics.read_model import ReadModelCollector
from streams.metrics.scraped import metric_value
from streams.pipeline.service import BatchResult, Pipeline, Series
from tests.support import event

TOPICS = {"leads": "leads", "deals": "deals", "tickets": "tickets"}


def sqlite_pipeline(tmp_path: Path) -> tuple[Engine, Pipeline]:
    engine = make_engine(f"sqlite:///{tmp_path / 'metrics.db'}")
    upgrade(engine)
    return engine, Pipeline(Repository(engine), TOPICS)


def test_known_label_children_exist_at_zero_from_start_up() -> None:
    registry = CollectorRegistry()
    LifecycleMetrics(registry).create_known_children(TOPICS.values(), EVENT_TOPICS)
    text = generate_latest(registry).decode()
    assert 'lifecycle_csat_responses_total{channel="chat",score="1"} 0.0' in text
    assert 'lifecycle_leads_total{channel="partner"} 0.0' in text
    assert 'lifecycle_events_total{outcome="dead_lettered",topic="tickets",type="invalid"} 0.0' in text


# metric -> its *_retracted twin (docs/metrics.md, "Order-freedom"): the recording rules subtract one from
# the other label set by label set (histograms bucket by bucket), so the twin must have every child of
# the metric, at 0 from start-up, and the same buckets
TWINS = {
    "lifecycle_deals_lost_total": "lifecycle_deals_lost_retracted_total",
    "lifecycle_sales_cycle_seconds_bucket": "lifecycle_sales_cycle_retracted_seconds_bucket",
    "lifecycle_csat_responses_total": "lifecycle_csat_responses_retracted_total",
    "lifecycle_csat_score_points_total": "lifecycle_csat_score_points_retracted_total",
    "lifecycle_ticket_first_response_seconds_bucket": "lifecycle_ticket_first_response_retracted_seconds_bucket",
}


def samples(registry: CollectorRegistry) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in registry.collect()
        for s in family.samples
        if not s.name.endswith("_created")
    }


def test_every_twin_exists_at_zero_from_start_up_with_its_metrics_label_sets() -> None:
    registry = CollectorRegistry()
    LifecycleMetrics(registry).create_known_children(TOPICS.values(), EVENT_TOPICS)
    got = samples(registry)
    for metric, twin in TWINS.items():
        of_metric = {labels for name, labels in got if name == metric}
        of_twin = {labels for name, labels in got if name == twin}
        assert of_metric and of_twin == of_metric, twin
        assert all(got[twin, labels] == 0 for labels in of_twin), twin
    value = registry.get_sample_value
    assert value("lifecycle_deals_lost_retracted_total") == 0
    assert value("lifecycle_sales_cycle_retracted_seconds_count") == 0
    for channel in (*TICKET_CHANNELS, UNKNOWN):
        assert value("lifecycle_csat_score_points_retracted_total", {"channel": channel}) == 0
        assert value("lifecycle_ticket_first_response_retracted_seconds_count", {"channel": channel}) == 0
        for score in "12345":
            assert value("lifecycle_csat_responses_retracted_total", {"score": score, "channel": channel}) == 0


@pytest.mark.parametrize(
    ("observations", "twin", "expected"),
    [
        pytest.param(
            {("deal_lost_retracted", ()): [1.0, 1.0]},
            "lifecycle_deals_lost_retracted",
            {("lifecycle_deals_lost_retracted_total", ()): 2},
            id="deal_lost",
        ),
        pytest.param(
            {("sales_cycle_retracted", ()): [2 * 86400.0]},
            "lifecycle_sales_cycle_retracted_seconds",
            {
                ("lifecycle_sales_cycle_retracted_seconds_count", ()): 1,
                ("lifecycle_sales_cycle_retracted_seconds_sum", ()): 172800,
                ("lifecycle_sales_cycle_retracted_seconds_bucket", (("le", "86400.0"),)): 0,
                ("lifecycle_sales_cycle_retracted_seconds_bucket", (("le", "259200.0"),)): 1,
            },
            id="sales_cycle",
        ),
        pytest.param(
            {("csat_retracted", ("1", "email")): [1.0], ("csat_retracted", ("4", "chat")): [1.0, 1.0]},
            "lifecycle_csat_",
            {
                ("lifecycle_csat_responses_retracted_total", (("score", "1"), ("channel", "email"))): 1,
                ("lifecycle_csat_responses_retracted_total", (("score", "4"), ("channel", "chat"))): 2,
                ("lifecycle_csat_score_points_retracted_total", (("channel", "email"),)): 1,
                ("lifecycle_csat_score_points_retracted_total", (("channel", "chat"),)): 8,
            },
            id="csat",
        ),
        pytest.param(
            {("ticket_first_response_retracted", ("phone",)): [600.0]},
            "lifecycle_ticket_first_response_retracted_seconds",
            {
                ("lifecycle_ticket_first_response_retracted_seconds_count", (("channel", "phone"),)): 1,
                ("lifecycle_ticket_first_response_retracted_seconds_sum", (("channel", "phone"),)): 600,
                (
                    "lifecycle_ticket_first_response_retracted_seconds_bucket",
                    (("channel", "phone"), ("le", "300.0")),
                ): 0,
                (
                    "lifecycle_ticket_first_response_retracted_seconds_bucket",
                    (("channel", "phone"), ("le", "900.0")),
                ): 1,
            },
            id="ticket_first_response",
        ),
    ],
)
def test_a_retraction_counts_in_its_twin_and_nowhere_else(
    observations: dict[Series, list[float]], twin: str, expected: dict[tuple[str, tuple[tuple[str, str], ...]], float]
) -> None:
    registry = CollectorRegistry()
    metrics = LifecycleMetrics(registry)
    metrics.create_known_children(TOPICS.values(), EVENT_TOPICS)
    before = samples(registry)
    metrics.record(BatchResult(observations=observations))
    for (name, labels), value in expected.items():
        assert registry.get_sample_value(name, dict(labels)) == value, (name, labels)
    changed = {name for (name, labels), value in samples(registry).items() if before.get((name, labels)) != value}
    assert changed and all(name.startswith(twin) and "_retracted" in name for name in changed), changed


def test_owner_label_is_bounded() -> None:
    label = BoundedLabel(3)
    assert [label(f"rep-{i}") for i in range(5)] == ["rep-0", "rep-1", "rep-2", OTHER_OWNER, OTHER_OWNER]
    assert label("rep-1") == "rep-1"


def test_counters_follow_a_processed_batch_and_ignore_duplicates(tmp_path: Path) -> None:
    _engine, pipeline = sqlite_pipeline(tmp_path)
    registry = CollectorRegistry()
    metrics = LifecycleMetrics(registry, max_owner_labels=1)
    docs = [
        event("lead.created", channel="referral"),
        event("deal.won", owner="ana", amount=100),
        event("deal.won", deal_id="d-2", owner="bob", amount=50),
        event("ticket.opened", channel="chat"),
        event("csat.submitted", score=4),
    ]
    messages = [RawMessage(EVENT_TOPICS[d["type"]], 0, i, b"c-1", orjson.dumps(d)) for i, d in enumerate(docs)]
    metrics.record(pipeline.process(messages))
    metrics.record(pipeline.process(messages))  # redelivery: all duplicates
    text = generate_latest(registry).decode()
    assert metric_value(text, "lifecycle_leads_total", channel="referral") == 1
    assert metric_value(text, "lifecycle_deals_won_total", owner="ana") == 1
    assert metric_value(text, "lifecycle_deals_won_total", owner=OTHER_OWNER) == 1
    assert metric_value(text, "lifecycle_revenue_won_total", currency="EUR") == 150
    assert metric_value(text, "lifecycle_conversions_total") == 1
    assert metric_value(text, "lifecycle_csat_responses_total", score="4", channel="chat") == 1
    assert metric_value(text, "lifecycle_events_total", outcome="duplicate") == 5
    assert metric_value(text, "lifecycle_events_total", outcome="processed") == 5


def test_state_gauges_come_from_the_database(tmp_path: Path) -> None:
    engine, pipeline = sqlite_pipeline(tmp_path)
    now = datetime.now().strftime("%Y-%m-%dT%H:%M:%SZ")
    docs = [
        event("deal.won", owner="ana", amount=250, at=now),
        event("ticket.opened", channel="phone", at=now),
        event("lead.created", customer_id="c-2"),
    ]
    pipeline.process(
        [
            RawMessage(EVENT_TOPICS[d["type"]], 0, i, d["customer_id"].encode(), orjson.dumps(d))
            for i, d in enumerate(docs)
        ]
    )
    quota_file = tmp_path / "quotas.json"
    quota_file.write_text(json.dumps({"period": "year", "currency": "EUR", "quotas": {"ana": 1000, "bob": 500}}))
    registry = CollectorRegistry()
    registry.register(ReadModelCollector(engine, Quotas.load(quota_file)))
    text = generate_latest(registry).decode()
    assert metric_value(text, "lifecycle_customers", stage="customer") == 1
    assert metric_value(text, "lifecycle_customers", stage="lead") == 1
    assert metric_value(text, "lifecycle_customers", stage="at_risk") == 0
    assert metric_value(text, "lifecycle_tickets_open", channel="phone") == 1
    assert metric_value(text, "lifecycle_quota_attainment_ratio", owner="ana") == 0.25
    assert metric_value(text, "lifecycle_quota_attainment_ratio", owner="bob") == 0


def test_series_stay_bounded_with_many_customers_and_owners(tmp_path: Path) -> None:
    _engine, pipeline = sqlite_pipeline(tmp_path)
    registry = CollectorRegistry()
    metrics = LifecycleMetrics(registry, max_owner_labels=50)
    metrics.create_known_children(TOPICS.values(), EVENT_TOPICS)
    docs = [
        event("deal.won", customer_id=f"c-{i}", deal_id=f"d-{i}", owner=f"rep-{i % 10_000}") for i in range(100_000)
    ]
    for start in range(0, len(docs), 10_000):
        chunk = docs[start : start + 10_000]
        messages = [RawMessage("deals", 0, i, d["customer_id"].encode(), orjson.dumps(d)) for i, d in enumerate(chunk)]
        metrics.record(pipeline.process(messages))
    series = [s for family in registry.collect() for s in family.samples]
    owners = {s.labels["owner"] for s in series if "owner" in s.labels}
    assert len(owners) == 51  # 50 named + "other"
    assert not any(label.startswith("c-") for s in series for label in s.labels.values())
    assert len(series) < 5000


class NotedCounter:
    """A counter whose collection notes the thread it runs in."""

    def __init__(self) -> None:
        self.threads: list[int] = []

    def describe(self) -> Iterator[Metric]:
        yield CounterMetricFamily("noted", "")

    def collect(self) -> Iterator[Metric]:
        self.threads.append(threading.get_ident())
        yield CounterMetricFamily("noted", "A counter whose collection notes its thread.", value=1)


class NotedReadModel(ReadModelCollector):
    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.threads: list[int] = []

    def collect(self) -> Iterator[Metric]:
        self.threads.append(threading.get_ident())
        return super().collect()


def scrape_setup(tmp_path: Path) -> tuple[CollectorRegistry, NotedCounter, NotedReadModel]:
    engine, _pipeline = sqlite_pipeline(tmp_path)
    counts = CollectorRegistry()
    LifecycleMetrics(counts).create_known_children(TOPICS.values(), EVENT_TOPICS)
    noted = NotedCounter()
    counts.register(noted)
    return counts, noted, NotedReadModel(engine)


def test_a_scrape_collects_counts_on_the_event_loop_and_the_read_model_in_a_thread(tmp_path: Path) -> None:
    """Batches are counted on the event loop: counts collected there show whole batches (collected in a
    thread, a scrape once showed a batch's events without its conversion). The SQL stays off the loop."""
    counts, noted, read_model = scrape_setup(tmp_path)
    loop_thread = threading.get_ident()
    text = asyncio.run(scrape(counts, read_model)).decode()
    assert noted.threads == [loop_thread]
    assert len(read_model.threads) == 1 and read_model.threads[0] != loop_thread
    assert metric_value(text, "noted_total") == 1
    assert 'lifecycle_events_total{outcome="processed",topic="deals",type="deal.won"} 0.0' in text
    assert 'lifecycle_customers{stage="lead"} 0.0' in text


def test_a_scrape_of_selected_names_runs_sql_only_for_read_model_names(tmp_path: Path) -> None:
    counts, _noted, read_model = scrape_setup(tmp_path)
    text = asyncio.run(scrape(counts, read_model, ["lifecycle_conversions_total"])).decode()
    assert read_model.threads == []
    assert "lifecycle_conversions_total 0.0" in text
    assert "lifecycle_events_total" not in text and "noted" not in text
    text = asyncio.run(scrape(counts, read_model, ["lifecycle_customers", "noted_total"])).decode()
    assert len(read_model.threads) == 1
    assert 'lifecycle_customers{stage="customer"} 0.0' in text
    assert metric_value(text, "noted_total") == 1
    assert "lifecycle_tickets_open" not in text and "lifecycle_conversions_total" not in text


def test_time_in_stage_is_a_histogram_per_stage_left() -> None:
    registry = CollectorRegistry()
    metrics = LifecycleMetrics(registry)
    metrics.create_known_children(["leads"], EVENT_TOPICS)
    for stage in Stage:
        assert registry.get_sample_value("lifecycle_stage_duration_seconds_count", {"stage": stage.value}) == 0
    metrics.record(BatchResult(observations={("stage_duration", ("lead",)): [3600.0, 10 * 86400.0]}))
    assert registry.get_sample_value("lifecycle_stage_duration_seconds_count", {"stage": "lead"}) == 2
    assert registry.get_sample_value("lifecycle_stage_duration_seconds_sum", {"stage": "lead"}) == 3600.0 + 864000.0
    assert registry.get_sample_value("lifecycle_stage_duration_seconds_bucket", {"stage": "lead", "le": "3600.0"}) == 1
