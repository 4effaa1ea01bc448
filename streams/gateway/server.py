"""`lifecycle gateway`: the HTTP service that takes webhooks and contract events and publishes them.

aiohttp, because the worker already runs on it (Faust's web server): one async HTTP stack in the
product, whose test client the tests already use. A request is answered 2xx only once Kafka has
acknowledged every record it led to (events and dead letters), and 503 while Kafka does not answer in
``LIFECYCLE_GATEWAY_KAFKA_TIMEOUT_SECONDS``: the vendors retry, and the events' ids, derived from the
vendors' own, make a retry a duplicate downstream. The gateway keeps no state: run as many as needed.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from typing import Any

import orjson
from aiohttp import web
from kafka import KafkaProducer
from kafka.errors import KafkaError
from prometheus_client import CollectorRegistry, generate_latest

from streams.contract.dead_letters import dead_letter_headers, fit_dead_letter
from streams.contract.messages import DeadLetter, RawMessage
from streams.domain.errors import InvalidEvent, RefusedRequest, UnmappablePayload
from streams.gateway.sources import SOURCES, VENDORS, Source, options_from
from streams.kafka.publisher import EventPublisher
from streams.kafka.security import KafkaSecurity
from streams.metrics.gateway import GatewayMetrics, RequestOutcome
from streams.settings import Settings

log = logging.getLogger(__name__)
ORIGIN_PREFIX = "gateway:"  # a gateway dead letter's origin, where a worker's names its source topic
KEPT_HEADERS = ("content-type",)  # what a dead letter keeps of the request's headers: never a credential
PUBLISH_THREADS = 64


class KafkaUnavailable(Exception):
    """Kafka did not acknowledge a request's records in time: a 503, the vendor retries."""


class Gateway:
    def __init__(
        self,
        settings: Settings,
        registry: CollectorRegistry,
        *,
        connect: Callable[[Settings], EventPublisher] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``connect`` makes the publisher (default :func:`gateway_publisher`), at the first request that
        needs it and again after it failed: the gateway starts, and answers 503, while Kafka is down."""
        self.settings = settings
        self.connect = connect or gateway_publisher
        self._publisher: EventPublisher | None = None
        self._connecting = threading.Lock()
        self.registry = registry
        self.metrics = GatewayMetrics(registry, tuple(SOURCES))
        self.options = options_from(settings)
        self.clock = clock
        # kafka-python blocks: sends and their acknowledgements wait in threads, off the event loop. A
        # request mostly waits (~20 ms for acks=all), so the threads bound the requests in flight:
        # 8 capped a gateway at ~400 requests/s on 2 cores (bench.gateway)
        self.executor = ThreadPoolExecutor(max_workers=PUBLISH_THREADS, thread_name_prefix="gateway-publish")

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.settings.gateway_max_body_bytes)
        app.router.add_post("/webhooks/{source}", self.webhook)
        app.router.add_post("/events", self.events)
        app.router.add_get("/metrics", self.metrics_page)
        app.router.add_get("/health", self.health)
        app.router.add_get("/openapi.yaml", self.openapi)
        app.on_cleanup.append(self._close)
        return app

    async def _close(self, _app: web.Application) -> None:
        self.executor.shutdown(wait=False)
        self.close()

    def close(self) -> None:
        if self._publisher is not None:
            self._publisher.close()
            self._publisher = None

    @property
    def publisher(self) -> EventPublisher:
        """The producer, connected on first use (in a publishing thread: kafka-python connects blocking)."""
        with self._connecting:
            if self._publisher is None:
                self._publisher = self.connect(self.settings)
            return self._publisher

    async def webhook(self, request: web.Request) -> web.Response:
        name = request.match_info["source"]
        if name not in VENDORS:
            return _json(404, {"error": f"no source {name[:64]!r}"})
        return await self.handle(SOURCES[name], request)

    async def events(self, request: web.Request) -> web.Response:
        return await self.handle(SOURCES["native"], request)

    async def health(self, _request: web.Request) -> web.Response:
        return _json(200, {"status": "ok"})

    async def openapi(self, _request: web.Request) -> web.Response:
        """This gateway's OpenAPI description, the file shipped in the package (streams/gateway/openapi.yaml)."""
        document = resources.files("streams.gateway").joinpath("openapi.yaml").read_bytes()
        return web.Response(body=document, content_type="application/yaml", charset="utf-8")

    async def metrics_page(self, _request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.registry), content_type="text/plain", charset="utf-8")

    async def handle(self, source: Source, request: web.Request) -> web.Response:
        started = time.perf_counter()
        try:
            outcome, response = await self._handle(source, request)
        except RefusedRequest as exc:
            outcome = _REFUSALS.get(exc.status, RequestOutcome.UNAUTHORIZED)
            response = _json(exc.status, {"error": exc.reason})
        except KafkaUnavailable:
            outcome = RequestOutcome.UNAVAILABLE
            response = _json(503, {"error": "Kafka is unavailable: retry later"}, {"Retry-After": "5"})
        self.metrics.requests.labels(source.name, outcome.value).inc()
        self.metrics.seconds.labels(source.name).observe(time.perf_counter() - started)
        return response

    async def _handle(self, source: Source, request: web.Request) -> tuple[RequestOutcome, web.Response]:
        if not source.enabled(self.settings):
            raise RefusedRequest(404, f"the {source.name} source is not enabled on this gateway")
        kind = (request.content_type or "").lower()
        if kind not in source.content_types:
            raise RefusedRequest(415, f"content type {kind[:100]!r} is not one of {sorted(source.content_types)}")
        if (request.content_length or 0) > self.settings.gateway_max_body_bytes:
            raise RefusedRequest(413, f"the body is larger than {self.settings.gateway_max_body_bytes} bytes")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise RefusedRequest(413, f"the body is larger than {self.settings.gateway_max_body_bytes} bytes") from None
        headers = {key: value for key, value in request.headers.items()}
        source.authenticate(body, headers, self.settings, self.clock())
        try:
            mapped = source.translate(body, headers, self.options)
        except UnmappablePayload as exc:
            await self._in_thread(self._publish, source.name, body, headers, (), [(exc, None)])
            self.metrics.dead_letters.labels(source.name).inc()
            return RequestOutcome.DEAD_LETTERED, _json(200, {"published": 0, "dead_lettered": 1, "reason": exc.reason})
        if mapped.ignored is not None:
            return RequestOutcome.IGNORED, _json(200, {"published": 0, "ignored": mapped.ignored})
        published, refused = await self._in_thread(self._publish, source.name, body, headers, mapped.events, [])
        self.metrics.published.labels(source.name).inc(published)
        self.metrics.dead_letters.labels(source.name).inc(len(refused))
        answer: dict[str, Any] = {"published": published, "dead_lettered": len(refused)}
        if refused:
            answer["reasons"] = refused
        return RequestOutcome.PUBLISHED, _json(200, answer)

    async def _in_thread(self, function: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, function, *args)

    def _publish(
        self,
        source: str,
        body: bytes,
        headers: dict[str, str],
        events: tuple[dict[str, Any], ...],
        refused: list[tuple[InvalidEvent, int | None]],
    ) -> tuple[int, list[str]]:
        """Sends every event the contract accepts, and a dead letter (the original body, the reason)
        for each it refuses and each of ``refused`` (index None: the body as a whole); returns once Kafka
        acknowledged them all."""
        futures: list[Any] = []
        try:
            for index, document in enumerate(events):
                try:
                    futures.append(self.publisher.publish(document))
                except InvalidEvent as exc:
                    refused.append((exc, index))
            letters = self._dead_letter_futures(source, body, headers, refused)
            for future in [*futures, *letters]:
                future.get(timeout=self.settings.gateway_kafka_timeout_seconds)
        except KafkaError as exc:
            log.warning("Kafka did not acknowledge a %s request's records: %s", source, exc)
            raise KafkaUnavailable from None
        return len(futures), [f"event {index}: {exc.reason}" for exc, index in refused if index is not None]

    def _dead_letter_futures(
        self, source: str, body: bytes, headers: dict[str, str], refused: list[tuple[InvalidEvent, int | None]]
    ) -> list[Any]:
        kept = [(name, value.encode()) for name, value in headers.items() if name.lower() in KEPT_HEADERS]
        futures = []
        for exc, index in refused:
            reason = exc.reason if index is None else f"event {index} of the request: {exc.reason}"
            message = RawMessage(ORIGIN_PREFIX + source, -1, -1, None, body, kept)
            letter = DeadLetter(message, exc.error_class, reason)
            key, value, letter_headers = fit_dead_letter(
                None, body, dead_letter_headers(letter), self.settings.dead_letter_max_bytes
            )
            futures.append(self.publisher.send_raw(self.settings.topic_dlq, key, value, letter_headers))
        return futures


_REFUSALS = {
    401: RequestOutcome.UNAUTHORIZED,
    404: RequestOutcome.DISABLED,
    413: RequestOutcome.TOO_LARGE,
    415: RequestOutcome.UNSUPPORTED_MEDIA_TYPE,
}


def _json(status: int, document: dict[str, Any], headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(document), content_type="application/json", headers=headers)


def gateway_publisher(settings: Settings) -> EventPublisher:
    """The validating publisher, acks=all and idempotent, that gives up on Kafka within the request's
    timeout instead of blocking a request for a minute."""
    timeout_ms = int(settings.gateway_kafka_timeout_seconds * 1000)
    producer = KafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        acks="all",
        enable_idempotence=True,
        linger_ms=1,
        max_block_ms=timeout_ms,
        bootstrap_timeout_ms=timeout_ms,
        request_timeout_ms=timeout_ms,
        delivery_timeout_ms=timeout_ms + 1000,
        **KafkaSecurity.from_settings(settings).kafka_python(),
    )
    return EventPublisher(settings, producer=producer)


def run_gateway(settings: Settings) -> None:
    gateway = Gateway(settings, CollectorRegistry())
    try:
        web.run_app(gateway.app(), host=settings.gateway_host, port=settings.gateway_port, print=None)
    finally:
        gateway.close()
