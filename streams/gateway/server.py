"""`lifecycle gateway`: the HTTP service that takes webhooks and contract events and publishes them.

aiohttp, because the worker already runs on it (Faust's web server): one async HTTP stack in the
product, whose test client the tests already use. A request is answered 2xx only once Kafka has
acknowledged every record it led to (events and dead letters), and 503 while Kafka does not answer in
``LIFECYCLE_GATEWAY_KAFKA_TIMEOUT_SECONDS``: the vendors retry, and the events' ids, derived from the
vendors' own, make a retry a duplicate downstream. The gateway keeps no state: run as many as needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from importlib import resources
from typing import Any

import orjson
from aiohttp import web
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry, generate_latest

from streams.contract.dead_letters import dead_letter_headers, fit_dead_letter
from streams.contract.messages import DeadLetter, RawMessage
from streams.domain.errors import InvalidEvent, RefusedRequest, UnmappablePayload
from streams.gateway.sources import SOURCES, VENDORS, Source, options_from
from streams.kafka.async_publisher import AsyncEventPublisher, Delivery, acknowledgement
from streams.metrics.gateway import GatewayMetrics, RequestOutcome
from streams.settings import Settings

log = logging.getLogger(__name__)
ORIGIN_PREFIX = "gateway:"  # a gateway dead letter's origin, where a worker's names its source topic
KEPT_HEADERS = ("content-type",)  # what a dead letter keeps of the request's headers: never a credential
Refusals = list[tuple[InvalidEvent, int | None]]  # each refused event's reason and index (None: the body)


class KafkaUnavailable(Exception):
    """Kafka did not acknowledge a request's records in time: a 503, the vendor retries."""


class Gateway:
    def __init__(
        self, settings: Settings, registry: CollectorRegistry, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.settings = settings
        self._publisher: AsyncEventPublisher | None = None
        self._starting: asyncio.Task[AsyncEventPublisher] | None = None
        self._closed = False
        self.registry = registry
        self.metrics = GatewayMetrics(registry, tuple(SOURCES))
        self.options = options_from(settings)
        self.clock = clock

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.settings.gateway_max_body_bytes)
        app.router.add_post("/events", self.events)
        app.router.add_post("/webhooks/{source}", self.webhook)
        app.router.add_get("/metrics", self.metrics_page)
        app.router.add_get("/health", self.health)
        app.router.add_get("/openapi.yaml", self.openapi)
        app.on_cleanup.append(self._close)
        return app

    async def _close(self, _app: web.Application) -> None:
        """Stops the producer, or the start of one under way (the app's cleanup, in its loop)."""
        self._closed = True
        if self._starting is not None:
            self._starting.cancel()
            await asyncio.gather(self._starting, return_exceptions=True)  # its done callback has run
        publisher, self._publisher = self._publisher, None
        if publisher is not None:
            await publisher.stop()

    async def publisher(self) -> AsyncEventPublisher:
        """The producer, started at the first request that needs it and again after a start failed: the
        gateway starts, and answers 503, while Kafka is down. The requests that arrive during a start
        share its outcome."""
        if self._publisher is not None:
            return self._publisher
        if self._closed:
            raise KafkaUnavailable
        if self._starting is None:
            self._starting = asyncio.create_task(self._start_publisher())
            self._starting.add_done_callback(self._started)
        return await asyncio.shield(self._starting)  # a request's timeout does not cancel the start

    def _started(self, task: asyncio.Task[AsyncEventPublisher]) -> None:
        """Keeps a started producer, even when every request that waited for it has timed out, and forgets
        a failed start (its failure retrieved), so that the next request tries again."""
        self._starting = None
        if not task.cancelled() and task.exception() is None:
            self._publisher = task.result()

    async def _start_publisher(self) -> AsyncEventPublisher:
        publisher = AsyncEventPublisher(self.settings, timeout_seconds=self.settings.gateway_kafka_timeout_seconds)
        try:
            await asyncio.wait_for(publisher.start(), self.settings.gateway_kafka_timeout_seconds)
        except (KafkaError, OSError, TimeoutError) as exc:
            log.warning("cannot reach Kafka at %s: %s", self.settings.bootstrap_servers, exc)
            await _discard(publisher)
            raise KafkaUnavailable from None
        except asyncio.CancelledError:  # the gateway stops
            await _discard(publisher)
            raise
        return publisher

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
        metrics = self.metrics.sources[source.name]
        metrics.requests[outcome].inc()
        metrics.seconds.observe(time.perf_counter() - started)
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
        headers = request.headers  # case-insensitive, as every header lookup of the sources expects
        source.authenticate(body, headers, self.settings, self.clock())
        try:
            mapped = source.translate(body, headers, self.options)
        except UnmappablePayload as exc:
            await self._publish(source.name, body, headers, (), [(exc, None)])
            self.metrics.sources[source.name].dead_letters.inc()
            return RequestOutcome.DEAD_LETTERED, _json(200, {"published": 0, "dead_lettered": 1, "reason": exc.reason})
        if mapped.ignored is not None:
            return RequestOutcome.IGNORED, _json(200, {"published": 0, "ignored": mapped.ignored})
        published, refused = await self._publish(source.name, body, headers, mapped.events, [])
        metrics = self.metrics.sources[source.name]
        metrics.published.inc(published)
        if refused:
            metrics.dead_letters.inc(len(refused))
        answer: dict[str, Any] = {"published": published, "dead_lettered": len(refused)}
        if refused:
            answer["reasons"] = refused
        return RequestOutcome.PUBLISHED, _json(200, answer)

    async def _publish(
        self,
        source: str,
        body: bytes,
        headers: Mapping[str, str],
        events: tuple[dict[str, Any], ...],
        refused: Refusals,
    ) -> tuple[int, list[str]]:
        """Sends every event the contract accepts, and a dead letter (the original body, the reason)
        for each it refuses and each of ``refused`` (index None: the body as a whole); returns once Kafka
        acknowledged them all, within ``LIFECYCLE_GATEWAY_KAFKA_TIMEOUT_SECONDS``."""
        if not events and not refused:  # an empty array: nothing to wait for Kafka for
            return 0, []
        deliveries: list[Delivery] = []
        try:
            # a send the timeout cancels is not sent; records handed over before it still go once Kafka
            # takes them (a 503 all the same: the vendor's retry is then a duplicate downstream)
            async with asyncio.timeout(self.settings.gateway_kafka_timeout_seconds):
                publisher = await self.publisher()
                for index, document in enumerate(events):
                    try:
                        deliveries.append(await publisher.publish(document))
                    except InvalidEvent as exc:
                        refused.append((exc, index))
                published = len(deliveries)
                if refused:
                    for key, value, letter_headers in self._dead_letters(source, body, headers, refused):
                        deliveries.append(await publisher.send_raw(self.settings.topic_dlq, key, value, letter_headers))
                await acknowledgement(deliveries)
        except (KafkaError, TimeoutError) as exc:
            log.warning("Kafka did not acknowledge a %s request's records: %s", source, exc)
            raise KafkaUnavailable from None
        return published, [f"event {index}: {exc.reason}" for exc, index in refused if index is not None]

    def _dead_letters(
        self, source: str, body: bytes, headers: Mapping[str, str], refused: Refusals
    ) -> Iterator[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]]:
        """Each refusal as a dead letter's key, value and headers: the original body, within the size limit."""
        # str(): aiohttp's header names are multidict's istr, which aiokafka's C record builder refuses
        kept = [(str(name), value.encode()) for name, value in headers.items() if name.lower() in KEPT_HEADERS]
        for exc, index in refused:
            reason = exc.reason if index is None else f"event {index} of the request: {exc.reason}"
            message = RawMessage(ORIGIN_PREFIX + source, -1, -1, None, body, kept)
            letter = DeadLetter(message, exc.error_class, reason)
            yield fit_dead_letter(None, body, dead_letter_headers(letter), self.settings.dead_letter_max_bytes)


async def _discard(publisher: AsyncEventPublisher) -> None:
    """Closes a producer that never started: nothing of it is kept, and aiokafka may fail to close what
    it never opened."""
    with contextlib.suppress(Exception):
        await publisher.stop()


_REFUSALS = {
    401: RequestOutcome.UNAUTHORIZED,
    404: RequestOutcome.DISABLED,
    413: RequestOutcome.TOO_LARGE,
    415: RequestOutcome.UNSUPPORTED_MEDIA_TYPE,
}


def _json(status: int, document: dict[str, Any], headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(document), content_type="application/json", headers=headers)


def event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's event loop: the loop's own work (tasks, futures, the sockets) is a quarter of a request's
    CPU on asyncio's, and uvloop does it in C (bench.gateway runs the bare handler on it too). asyncio's
    where uvloop is not installed (Windows)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run_gateway(settings: Settings) -> None:
    gateway = Gateway(settings, CollectorRegistry())
    # the ~75,000 objects of the imports are never freed: frozen, the collector's full passes skip them,
    # and a pass no longer stalls the requests in flight (bench/results/2026-12-gateway.md: the p99 of
    # 100-event requests 120 -> 70 ms)
    gc.collect()
    gc.freeze()
    web.run_app(gateway.app(), host=settings.gateway_host, port=settings.gateway_port, print=None, loop=event_loop())
