"""The composition root: wires settings, Kafka (Faust), the database and the metrics together.

Nothing else constructs these objects; tests build their own through :func:`build` with their own
settings and a fresh :class:`~prometheus_client.CollectorRegistry`.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

import faust
from faust.sensors.prometheus import FaustMetrics
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, disable_created_metrics
from sqlalchemy import Engine

from agents.ingest import register_ingest
from streams.contract.messages import RawMessage
from streams.contract.vocabulary import EVENT_TOPICS
from streams.db.engine import make_engine, redacted
from streams.db.migrations import reset, upgrade
from streams.db.queries import ENTRIES, customer_entries, customer_journey
from streams.domain.errors import InvalidRequest
from streams.kafka.admin import ensure_topics
from streams.kafka.producer import kafka_publisher
from streams.kafka.reading import read_to_end
from streams.kafka.security import KafkaSecurity
from streams.kafka.sensors import WorkerMonitor
from streams.kafka.transport import RawBytes, Transport
from streams.metrics.exposition import scrape
from streams.metrics.instruments import LifecycleMetrics
from streams.metrics.quotas import Quotas
from streams.metrics.read_model import ReadModelCollector
from streams.pipeline.batches import BatchHandler
from streams.pipeline.runner import PipelineRunner
from streams.pipeline.service import PipelineConfig
from streams.settings import Settings

log = logging.getLogger(__name__)
PRUNE_INTERVAL_SECONDS = 10.0


@dataclass
class Lifecycle:
    settings: Settings
    app: faust.App
    engine: Engine
    registry: CollectorRegistry  # what the worker counts (lifecycle_* counters, faust_*)
    read_model: ReadModelCollector  # gauges read from the database at scrape time
    metrics: LifecycleMetrics
    handler: BatchHandler
    ingest: Any  # the Faust agent


def build(settings: Settings | None = None, *, registry: CollectorRegistry | None = None) -> Lifecycle:
    settings = settings or Settings()
    registry = registry if registry is not None else CollectorRegistry()
    # no `*_created` series: unused by the dashboards and alerts, they would bloat a scrape's text and
    # double its rendering time (process-wide switch of prometheus_client, hence here, at the root)
    disable_created_metrics()  # type: ignore[no-untyped-call]
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.sqlalchemy_url)
    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{server.strip()}" for server in settings.bootstrap_servers.split(",")],
        broker_credentials=KafkaSecurity.from_settings(settings).faust(),
        key_serializer="raw",
        value_serializer="raw",
        store="memory://",
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=1,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        broker_commit_interval=1.0,
        broker_session_timeout=settings.kafka_session_timeout,
        broker_heartbeat_interval=settings.kafka_session_timeout / 4,
        stream_wait_empty=False,
        web_enabled=True,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        web_port=settings.web_port,
        datadir=str(settings.data_dir / "faust"),
        autodiscover=False,
        logging_config=None,
    )
    use_lean_faust(
        app,
        registry,
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        fetch_min_bytes=settings.kafka_fetch_min_bytes,
    )
    metrics = LifecycleMetrics(registry, max_owner_labels=settings.max_owner_labels)
    metrics.create_known_children(settings.source_topics.values(), EVENT_TOPICS)
    quotas = Quotas.load(settings.quota_file, settings.quota_timezone) if settings.quota_file else None
    if quotas is not None:
        metrics.create_owner_children(quotas.by_owner, quotas.currency)
    read_model = ReadModelCollector(
        engine,
        quotas,
        metrics.owner,
        retention_period=settings.retention_period,
        zone=ZoneInfo(settings.quota_timezone),
        retention_refresh_seconds=settings.retention_refresh_seconds,
    )

    config = PipelineConfig.from_settings(settings)
    runner = (
        PipelineRunner.in_process(config) if settings.pipeline_process else PipelineRunner.in_thread(config.build())
    )
    source = app.topic(*settings.source_topics.values(), schema=RawBytes())

    handler = BatchHandler(
        runner,
        metrics,
        publish_dead_letters=kafka_publisher(app, settings.topic_dlq),
        publish_transitions=kafka_publisher(app, settings.topic_lifecycle),
        retry_max_seconds=settings.db_retry_max_seconds,
        dead_letter_max_bytes=settings.dead_letter_max_bytes,
    )
    ingest = register_ingest(app, source, handler, batch_max=settings.batch_max, batch_within=settings.batch_within)
    lifecycle = Lifecycle(settings, app, engine, registry, read_model, metrics, handler, ingest)
    _register_web(lifecycle)

    @app.task  # type: ignore[untyped-decorator]
    async def _publish_outbox() -> None:
        count = await handler.publish_outbox()
        if count:
            log.info("published %d stage transitions left over from before a restart", count)

    @app.timer(PRUNE_INTERVAL_SECONDS)  # type: ignore[untyped-decorator]
    async def _prune() -> None:
        count = await handler.prune()
        if count:
            log.debug("pruned %d expired dedup records", count)

    return lifecycle


def use_lean_faust(
    app: faust.App, registry: CollectorRegistry, *, fetch_max_wait_ms: int, fetch_min_bytes: int = 1
) -> None:
    """Our consumer (``streams.kafka.transport``) and sensors (``streams.kafka.sensors``) instead of Faust's.

    Call before anything touches ``app.topics``, which would build Faust's default transport."""
    assert app._transport is None, "app.transport was built already"
    app.transport = Transport(
        app.conf.broker_consumer, app, fetch_max_wait_ms=fetch_max_wait_ms, fetch_min_bytes=fetch_min_bytes
    )
    app.monitor = WorkerMonitor(metrics=FaustMetrics.create(registry, "faust"))


def faust_worker(app: faust.App, loglevel: str) -> faust.Worker:
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    # Faust's start-up spinner sets the root logger to DEBUG to spin on every record: every library's
    # debug line would then be built and handled (aiokafka logs each message it sends)
    worker.spinner = None
    # What the imports and the app's construction made lives as long as the worker: kept out of the
    # garbage collector's sight, since a full collection would stop the event loop for ~150 ms to walk
    # it, stalling every batch in flight (docs/performance.md)
    gc.freeze()
    return worker


def _register_web(lifecycle: Lifecycle) -> None:
    app, engine, registry, read_model = lifecycle.app, lifecycle.engine, lifecycle.registry, lifecycle.read_model

    @app.page("/metrics")
    async def metrics_page(self: Any, request: Any) -> Any:
        body = await scrape(registry, read_model, request.query.getall("name[]", []))
        return self.bytes(body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def answer(view: Any, customer_id: str, question: Callable[[], dict[str, Any] | None]) -> Any:
        """The read model's answer as JSON: a page asked for badly is a 400, an unknown customer a 404."""
        try:
            body = await asyncio.to_thread(question)
        except InvalidRequest as exc:
            return view.json({"error": str(exc)}, status=400)
        if body is None:
            return view.json({"error": f"unknown customer {customer_id!r}"}, status=404)
        return view.json(body)

    @app.page("/customers/{customer_id}")
    async def customer_page(self: Any, request: Any, customer_id: str) -> Any:
        return await answer(self, customer_id, partial(customer_journey, engine, customer_id, request.query))

    def entries_page(name: str) -> Callable[..., Any]:
        async def page(self: Any, request: Any, customer_id: str) -> Any:
            return await answer(self, customer_id, partial(customer_entries, engine, customer_id, name, request.query))

        return page

    for name in ENTRIES:
        app.page(f"/customers/{{customer_id}}/{name}", name=f"customer_{name}")(entries_page(name))

    @app.page("/healthz")
    async def health_page(self: Any, request: Any) -> Any:
        return self.json({"status": "ok"})


def prepare_infrastructure(settings: Settings) -> None:
    """What the worker needs before Faust starts: the schema and the topics."""
    engine = make_engine(settings.sqlalchemy_url)
    applied = upgrade(engine)
    log.info("database %s ready (migrations applied: %s)", redacted(settings.sqlalchemy_url), applied or "none")
    engine.dispose()
    ensure_topics(settings)


def rebuild(settings: Settings, *, batch_size: int = 5000) -> int:
    """The read model dropped and made again from every message on the source topics (`lifecycle rebuild`).

    Dead letters are not sent again (the dead-letter topic has them) and transitions are not published
    again (the ``lifecycle`` topic has them): the rebuilt rows are what the worker wrote the first time."""
    pipeline = PipelineConfig.from_settings(settings).build()
    engine = pipeline.repository.engine
    reset(engine)
    total = 0
    for records in read_to_end(settings, settings.source_topics.values(), batch_size=batch_size):
        pipeline.process(
            [RawMessage(r.topic, r.partition, r.offset, r.key, r.value, list(r.headers or [])) for r in records]
        )
        total += len(records)
    pipeline.repository.mark_all_published()
    log.info("rebuilt the read model from %d messages", total)
    return total
