"""The composition root: wires settings, Kafka (Faust), the database and the metrics together.

Nothing else constructs these objects; tests build their own through :func:`build` with their own
settings and a fresh :class:`~prometheus_client.CollectorRegistry`.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import logging
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import faust
from faust.sensors.prometheus import FaustMetrics
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, disable_created_metrics
from sqlalchemy import Engine

from agents.ingest import register_ingest
from streams.batches import BatchHandler, Publish, Record
from streams.contract import EVENT_TOPICS
from streams.db.engine import make_engine, redacted
from streams.db.migrations import upgrade
from streams.kafka_admin import ensure_topics
from streams.metrics import LifecycleMetrics, Quotas, ReadModelCollector, scrape
from streams.queries import customer_journey
from streams.runner import PipelineConfig, PipelineRunner
from streams.sensors import WorkerMonitor
from streams.settings import Settings
from streams.transport import RawBytes, Transport

log = logging.getLogger(__name__)


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


def _broker_credentials(settings: Settings) -> Any:
    protocol = settings.kafka_security_protocol
    context = None
    if protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(
            cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
        )
        if settings.kafka_ssl_certfile:
            context.load_cert_chain(str(settings.kafka_ssl_certfile), str(settings.kafka_ssl_keyfile or "") or None)
    if settings.kafka_sasl_mechanism:
        password = settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else ""
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username or "",
            password=password,
            mechanism=settings.kafka_sasl_mechanism,
            ssl_context=context,
        )
    return faust.SSLCredentials(context) if context is not None else None


def build(settings: Settings | None = None, *, registry: CollectorRegistry | None = None) -> Lifecycle:
    settings = settings or Settings()
    registry = registry if registry is not None else CollectorRegistry()
    # no `*_created` series: unused by the dashboards and alerts, they were 30 % of a scrape's text and
    # half of its rendering time (process-wide switch of prometheus_client, hence here, at the root)
    disable_created_metrics()  # type: ignore[no-untyped-call]
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.sqlalchemy_url)
    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{server.strip()}" for server in settings.bootstrap_servers.split(",")],
        broker_credentials=_broker_credentials(settings),
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
    quotas = Quotas.load(settings.quota_file) if settings.quota_file else None
    if quotas is not None:
        metrics.create_owner_children(quotas.by_owner, quotas.currency)
    read_model = ReadModelCollector(engine, quotas, metrics.owner)

    config = PipelineConfig(
        settings.sqlalchemy_url,
        settings.source_topics,
        settings.at_risk_csat_threshold,
        settings.max_message_bytes,
        settings.state_cache_customers,
    )
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
    )
    ingest = register_ingest(app, source, handler, batch_max=settings.batch_max, batch_within=settings.batch_within)
    lifecycle = Lifecycle(settings, app, engine, registry, read_model, metrics, handler, ingest)
    _register_web(lifecycle)

    @app.task  # type: ignore[untyped-decorator]
    async def _publish_outbox() -> None:
        count = await handler.publish_outbox()
        if count:
            log.info("published %d stage transitions left over from before a restart", count)

    return lifecycle


def use_lean_faust(
    app: faust.App, registry: CollectorRegistry, *, fetch_max_wait_ms: int, fetch_min_bytes: int = 1
) -> None:
    """Our consumer (``streams.transport``) and sensors (``streams.sensors``) instead of Faust's.

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
    # What the imports and the app's construction made lives as long as the worker: out of the garbage
    # collector's sight, a full collection no longer stops the event loop for 130-170 ms (measured) to
    # walk it, which stalled every batch in flight (README, Performance)
    gc.freeze()
    return worker


def kafka_publisher(app: faust.App, topic: str) -> Publish:
    """A batch's records as one record batch per partition (aiokafka's batch API), under Faust's producer.

    Sent one by one (``app.producer.send``: a future, a partitioner call and an accumulator append per
    record) the stage transitions took a tenth of the worker's event loop under load. Partitions are
    Faust's own ``key_partition`` (aiokafka's default partitioner), so a key lands where ``send`` would
    put it; batches of one partition go out in order."""

    async def publish(records: Sequence[Record]) -> None:
        producer: Any = app.producer  # Faust's aiokafka driver: typed as the generic ProducerT
        kafka = producer._ensure_producer()  # the started aiokafka producer
        await kafka.partitions_for(topic)  # metadata first, as send() does: key_partition reads it
        by_partition: dict[int, list[Record]] = collections.defaultdict(list)
        for record in records:
            by_partition[producer.key_partition(topic, record[0]).partition].append(record)
        deliveries = []
        for partition, members in by_partition.items():
            batch = kafka.create_batch()
            for key, value, headers in members:
                if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:  # full
                    deliveries.append(await kafka.send_batch(batch, topic, partition=partition))
                    batch = kafka.create_batch()
                    batch.append(key=key, value=value, timestamp=None, headers=headers)  # a first one always fits
            deliveries.append(await kafka.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*deliveries)

    return publish


def _register_web(lifecycle: Lifecycle) -> None:
    app, engine, registry, read_model = lifecycle.app, lifecycle.engine, lifecycle.registry, lifecycle.read_model

    @app.page("/metrics")
    async def metrics_page(self: Any, request: Any) -> Any:
        body = await scrape(registry, read_model, request.query.getall("name[]", []))
        return self.bytes(body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    @app.page("/customers/{customer_id}")
    async def customer_page(self: Any, request: Any, customer_id: str) -> Any:
        journey = await asyncio.to_thread(customer_journey, engine, customer_id)
        if journey is None:
            return self.json({"error": f"unknown customer {customer_id!r}"}, status=404)
        return self.json(journey)

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
