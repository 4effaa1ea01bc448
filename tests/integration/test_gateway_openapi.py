"""The gateway against its OpenAPI description (streams/gateway/openapi.yaml), with Schemathesis: every
operation fuzzed (valid and invalid input) against a real gateway on the real broker, each answer checked
for a server error, an undocumented status, content type, header or body. Requests carry valid
credentials (signatures computed over the very bytes sent), except the negative cases Schemathesis
generated without any, so both what authentication lets through and what it refuses are checked. And:
the description and the routes the app registers are the same set of operations, and the app serves
the file."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, settings
from prometheus_client import CollectorRegistry
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

import streams.gateway
from streams.gateway.server import Gateway
from streams.kafka.admin import ensure_topics
from streams.kafka.broker import free_port
from tests.conftest import settings_from
from tests.support import event

OPENAPI = Path(streams.gateway.__file__).with_name("openapi.yaml")
TOKEN = "openapi-t0ken"
STRIPE_SECRET = "whsec_openapi"
ZENDESK_SECRET = "zendesk-openapi-secret"
PIPEDRIVE_USER, PIPEDRIVE_PASSWORD = "lifecycle", "pipedrive-openapi"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
STRIPE_NOT_FOLLOWED = {"id": "evt_openapi_2", "object": "event", "type": "customer.created", "data": {"object": {}}}
CREDENTIAL_HEADERS = ("authorization", "stripe-signature", "x-zendesk-webhook-signature")

schema = schemathesis.openapi.from_path(
    OPENAPI,
    config=schemathesis.Config.from_dict(
        {"generation": {"mode": "all", "max-examples": 50, "deterministic": True, "database": "none"}}
    ),
)


@schemathesis.serializer("application/x-ndjson", "application/ndjson")
def _ndjson(_context: schemathesis.SerializationContext, value: Any) -> bytes:
    """NdjsonEvents: the array's items one JSON object a line (anything else, negative data: as JSON)."""
    if isinstance(value, list):
        return b"".join(json.dumps(item).encode() + b"\n" for item in value)
    return json.dumps(value).encode()


def gateway_env(kafka_bootstrap: str, suffix: str, **overrides: str) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "LIFECYCLE_TOPIC_LEADS": f"openapi-leads-{suffix}",
        "LIFECYCLE_TOPIC_DEALS": f"openapi-deals-{suffix}",
        "LIFECYCLE_TOPIC_TICKETS": f"openapi-tickets-{suffix}",
        "LIFECYCLE_TOPIC_LIFECYCLE": f"openapi-lifecycle-{suffix}",
        "LIFECYCLE_TOPIC_DLQ": f"openapi-dlq-{suffix}",
        "LIFECYCLE_GATEWAY_TOKEN": TOKEN,
        "LIFECYCLE_GATEWAY_STRIPE_SECRET": STRIPE_SECRET,
        "LIFECYCLE_GATEWAY_ZENDESK_SECRET": ZENDESK_SECRET,
        "LIFECYCLE_GATEWAY_PIPEDRIVE_USERNAME": PIPEDRIVE_USER,
        "LIFECYCLE_GATEWAY_PIPEDRIVE_PASSWORD": PIPEDRIVE_PASSWORD,
        "LIFECYCLE_GATEWAY_MAX_BODY_BYTES": "65536",
        "LIFECYCLE_GATEWAY_KAFKA_TIMEOUT_SECONDS": "5",
        **overrides,
    }


@contextmanager
def serving(gateway: Gateway) -> Iterator[str]:
    """The gateway's app on a free port of 127.0.0.1, its event loop in a thread of its own (Schemathesis
    sends with requests, blocking); yields its base URL."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(gateway.app())
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever, name="openapi-gateway", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()


@pytest.fixture(scope="module")
def gateway_url(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings_ = settings_from(gateway_env(kafka_bootstrap, tmp_path_factory.mktemp("openapi").name.replace("_", "-")))
    ensure_topics(settings_)
    with serving(Gateway(settings_, CollectorRegistry())) as url:
        yield url


def credentials(path: str, source: str | None, body: bytes) -> dict[str, str]:
    """Valid credentials for a request to ``path`` with ``body``, by each vendor's own scheme."""
    if path == "/events":
        return {"Authorization": f"Bearer {TOKEN}"}
    if source == "pipedrive":
        basic = base64.b64encode(f"{PIPEDRIVE_USER}:{PIPEDRIVE_PASSWORD}".encode()).decode()
        return {"Authorization": f"Basic {basic}"}
    if source == "stripe":
        stamp = str(int(time.time()))
        signature = hmac.new(STRIPE_SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        return {"Stripe-Signature": f"t={stamp},v1={signature}"}
    if source == "zendesk":
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        digest = hmac.new(ZENDESK_SECRET.encode(), stamp.encode() + body, hashlib.sha256).digest()
        return {
            "X-Zendesk-Webhook-Signature": base64.b64encode(digest).decode(),
            "X-Zendesk-Webhook-Signature-Timestamp": stamp,
        }
    return {}


def encoded_body(case: schemathesis.Case[Any]) -> bytes | None:
    """The bytes Schemathesis would send for the case's body (None: it has none), so that they can be
    signed and sent as they are."""
    kwargs = case.as_transport_kwargs()
    if "json" in kwargs:
        return json.dumps(kwargs["json"], allow_nan=False).encode()  # as requests encodes it
    data = kwargs.get("data")
    if data is None:
        return None
    return data if isinstance(data, bytes) else str(data).encode()


@schema.parametrize()
@settings(max_examples=50, derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_answer_conforms_to_the_openapi_description(case: schemathesis.Case[Any], gateway_url: str) -> None:
    call_and_validate(case, gateway_url, CHECKS)


def call_and_validate(case: schemathesis.Case[Any], base_url: str, checks: list[Any]) -> schemathesis.Response:
    """Sends the case with valid credentials signed over the bytes sent, except a negative case that
    Schemathesis generated without any (which the gateway must refuse, as documented)."""
    body = encoded_body(case)
    generated = {name.lower() for name in (case.headers or {})}
    negative = case.meta is not None and case.meta.generation.mode.is_negative
    headers: dict[str, str] = {}
    if case.operation.security and (not negative or generated & set(CREDENTIAL_HEADERS)):
        source = (case.path_parameters or {}).get("source")
        headers = credentials(case.operation.path, source if isinstance(source, str) else None, body or b"")
    extra: dict[str, Any] = {} if body is None else {"data": body}
    return case.call_and_validate(base_url=base_url, headers=headers, checks=checks, **extra)


@pytest.mark.parametrize(
    ("path", "body", "answer"),
    [
        ("/webhooks/stripe", STRIPE_NOT_FOLLOWED, {"published": 0, "ignored": "customer.created is not followed"}),
        (
            "/events",
            [
                event("lead.created", "openapi-2", event_id="openapi-2"),
                {**event("csat.submitted", "openapi-2"), "score": 9},
            ],
            {"published": 1, "dead_lettered": 1, "reasons": ["event 1: data.score must be smaller than or equal to 5"]},
        ),
        (
            "/webhooks/zendesk",
            [],
            {"published": 0, "dead_lettered": 1, "reason": "a Zendesk webhook body is a JSON object, not list"},
        ),
        ("/events", {"padding": "x" * 70_000}, {"error": "the body is larger than 65536 bytes"}),
    ],
    ids=["ignored", "published-and-refused", "unmappable", "too-large"],
)
def test_each_documented_answer_conforms(gateway_url: str, path: str, body: Any, answer: dict[str, Any]) -> None:
    """The answers that fuzzing rarely reaches, each validated against the description."""
    operation = schema["/events" if path == "/events" else "/webhooks/{source}"]["POST"]
    source = None if path == "/events" else {"source": path.rsplit("/", 1)[1]}
    case = operation.Case(body=body, media_type="application/json", path_parameters=source)
    response = call_and_validate(case, gateway_url, CHECKS)
    assert response.json() == answer


def test_kafka_unavailable_is_answered_as_documented(tmp_path: Path) -> None:
    """The 503 (its Retry-After header and body) is no answer the fuzzing above can reach."""
    env = gateway_env(f"127.0.0.1:{free_port()}", tmp_path.name, LIFECYCLE_GATEWAY_KAFKA_TIMEOUT_SECONDS="1")
    case = schema["/events"]["POST"].Case(body=event("lead.created", "openapi-1"), media_type="application/json")
    with serving(Gateway(settings_from(env), CollectorRegistry())) as url:
        response = call_and_validate(case, url, [check for check in CHECKS if check is not not_a_server_error])
    headers = {name.lower(): values for name, values in response.headers.items()}
    assert response.status_code == 503 and headers["retry-after"] == ["5"]


def test_the_description_has_every_route_of_the_app_and_no_other() -> None:
    """aiohttp adds a HEAD route beside each GET (``allow_head``): the description lists the GETs."""
    app = Gateway(settings_from({}), CollectorRegistry()).app()
    routes = {(route.method, route.resource.canonical) for route in app.router.routes() if route.resource}
    heads = {path for method, path in routes if method == "HEAD"}
    served = {(method, path) for method, path in routes if method != "HEAD"}
    assert heads == {path for method, path in served if method == "GET"}
    document = yaml.safe_load(OPENAPI.read_text())
    described = {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
    }
    assert described == served


def test_the_app_serves_the_packaged_description() -> None:
    gateway = Gateway(settings_from({}), CollectorRegistry())

    async def fetch() -> tuple[int, str, bytes]:
        async with TestClient(TestServer(gateway.app())) as client:
            answer = await client.get("/openapi.yaml")
            return answer.status, answer.content_type, await answer.read()

    status, content_type, served = asyncio.run(fetch())
    assert (status, content_type) == (200, "application/yaml")
    assert served == OPENAPI.read_bytes()
    assert yaml.safe_load(served)["openapi"].startswith("3.")
