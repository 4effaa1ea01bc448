"""The webhook gateway on the real broker: what a request publishes, what it refuses, and that a refused
request publishes nothing; then signed webhooks through a real worker into the read model."""

from __future__ import annotations

import asyncio
import collections
import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from streams.cli.processes import running_worker
from streams.db.engine import make_engine
from streams.db.queries import customer_journey
from streams.gateway.server import Gateway
from streams.kafka.admin import ensure_topics
from streams.kafka.broker import LocalKafka, free_port
from streams.kafka.reading import read_to_end
from streams.metrics.scraped import metric_value
from streams.settings import Settings
from tests.conftest import settings_from
from tests.support import event, wait_for_value

Client = TestClient[web.Request, web.Application]
TOKEN = "t0ken-for-tests"
STRIPE_SECRET = "whsec_test_secret"


@pytest.fixture
def gateway_env(kafka_bootstrap: str, topic_names: dict[str, str], tmp_path: Path) -> dict[str, str]:
    return {
        **topic_names,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "LIFECYCLE_DATA_DIR": str(tmp_path / "data"),
        "LIFECYCLE_GATEWAY_TOKEN": TOKEN,
        "LIFECYCLE_GATEWAY_STRIPE_SECRET": STRIPE_SECRET,
        "LIFECYCLE_GATEWAY_MAX_BODY_BYTES": "65536",
        "LIFECYCLE_GATEWAY_KAFKA_TIMEOUT_SECONDS": "5",
    }


def serve(settings_: Settings, scenario: Callable[[Client, Gateway], Awaitable[None]]) -> None:
    gateway = Gateway(settings_, CollectorRegistry())

    async def run() -> None:
        async with TestClient(TestServer(gateway.app())) as client:
            await scenario(client, gateway)

    asyncio.run(run())  # the client's close runs the app's cleanup: the producer's stop


def records(settings_: Settings) -> dict[str, list[Any]]:
    """Every record on the source topics and the dead-letter topic, by topic."""
    topics = [*settings_.source_topics.values(), settings_.topic_dlq]
    found: dict[str, list[Any]] = {topic: [] for topic in topics}
    for batch in read_to_end(settings_, topics):
        for record in batch:
            found[record.topic].append(record)
    return found


def bearer(kind: str = "application/json") -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}", "Content-Type": kind}


def stripe_signed(body: bytes, at: float | None = None, secret: str = STRIPE_SECRET) -> dict[str, str]:
    """Stripe's documented scheme: HMAC-SHA256 of ``t.payload`` with the endpoint secret."""
    stamp = int(at if at is not None else time.time())
    signature = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return {"Stripe-Signature": f"t={stamp},v1={signature}", "Content-Type": "application/json"}


def stripe_invoice_paid(event_id: str, customer: str, amount: int = 120000) -> bytes:
    invoice = {
        "id": f"in_{event_id}",
        "object": "invoice",
        "customer": customer,
        "amount_paid": amount,
        "currency": "eur",
        "billing_reason": "subscription_create",
        "status": "paid",
    }
    document = {"id": event_id, "object": "event", "type": "invoice.paid", "created": 1767225600}
    return orjson.dumps({**document, "data": {"object": invoice}, "api_version": "2024-06-20"})


def test_contract_events_one_a_json_array_and_ndjson_are_published_once_acknowledged(
    gateway_env: dict[str, str],
) -> None:
    settings_ = settings_from(gateway_env)
    ensure_topics(settings_)
    one = event("lead.created", "g-1")
    many = [event("deal.opened", "g-2"), event("ticket.opened", "g-3")]
    lines = [event("nps.submitted", "g-4", score=10), event("customer.churned", "g-4")]

    async def scenario(client: Client, gateway: Gateway) -> None:
        answer = await client.post("/events", data=orjson.dumps(one), headers=bearer())
        assert answer.status == 200 and (await answer.json())["published"] == 1
        answer = await client.post("/events", data=orjson.dumps(many), headers=bearer())
        assert (await answer.json())["published"] == 2
        ndjson = b"\n".join(orjson.dumps(line) for line in lines) + b"\n\n"
        answer = await client.post("/events", data=ndjson, headers=bearer("application/x-ndjson"))
        assert (await answer.json())["published"] == 2
        scraped = await (await client.get("/metrics")).text()
        assert metric_value(scraped, "lifecycle_gateway_events_published_total", source="native") == 5
        assert metric_value(scraped, "lifecycle_gateway_requests_total", outcome="published") == 3

    serve(settings_, scenario)
    found = records(settings_)
    published = {orjson.loads(r.value)["event_id"]: r.key for topic, rs in found.items() for r in rs}
    assert published == {e["event_id"]: e["customer_id"].encode() for e in [one, *many, *lines]}
    assert not found[settings_.topic_dlq]


def test_a_refused_request_publishes_nothing_and_a_refused_event_is_a_dead_letter_with_the_body(
    gateway_env: dict[str, str],
) -> None:
    settings_ = settings_from(gateway_env)
    ensure_topics(settings_)
    bad = {**event("csat.submitted", "g-9"), "score": 9}
    good = event("lead.created", "g-9")
    body = orjson.dumps([good, bad])

    async def scenario(client: Client, gateway: Gateway) -> None:
        statuses = {
            "no token": (await client.post("/events", data=body, headers={"Content-Type": "application/json"})).status,
            "wrong token": (
                await client.post("/events", data=body, headers={**bearer(), "Authorization": "Bearer nope"})
            ).status,
            "wrong type": (await client.post("/events", data=body, headers=bearer("text/plain"))).status,
            "too large": (await client.post("/events", data=b"[" + b" " * 70000 + b"]", headers=bearer())).status,
            "disabled": (await client.post("/webhooks/zendesk", data=b"{}", headers=bearer())).status,
            "unknown": (await client.post("/webhooks/salesforce", data=b"{}", headers=bearer())).status,
            "badly signed": (
                await client.post(
                    "/webhooks/stripe",
                    data=stripe_invoice_paid("evt_1", "cus_1"),
                    headers=stripe_signed(b"other body"),
                )
            ).status,
            "stale": (
                await client.post(
                    "/webhooks/stripe",
                    data=stripe_invoice_paid("evt_1", "cus_1"),
                    headers=stripe_signed(stripe_invoice_paid("evt_1", "cus_1"), at=time.time() - 3600),
                )
            ).status,
        }
        assert statuses == {
            "no token": 401,
            "wrong token": 401,
            "wrong type": 415,
            "too large": 413,
            "disabled": 404,
            "unknown": 404,
            "badly signed": 401,
            "stale": 401,
        }
        answer = await client.post("/events", data=body, headers=bearer())
        assert answer.status == 200
        assert await answer.json() == {
            "published": 1,
            "dead_lettered": 1,
            "reasons": ["event 1: data.score must be smaller than or equal to 5"],
        }

    serve(settings_, scenario)
    found = records(settings_)
    assert [orjson.loads(r.value)["event_id"] for r in found[settings_.source_topics["leads"]]] == [good["event_id"]]
    (letter,) = found[settings_.topic_dlq]
    assert letter.value == body  # the request's own body, nothing lost
    headers = dict(letter.headers)
    assert headers["lifecycle.errors.topic"] == b"gateway:native"
    assert headers["lifecycle.errors.class"] == b"invalid_field"
    assert TOKEN.encode() not in b"".join(value for _, value in letter.headers)


def test_kafka_unavailable_is_a_503_and_counted(gateway_env: dict[str, str]) -> None:
    settings_ = settings_from(
        {
            **gateway_env,
            "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
            "LIFECYCLE_GATEWAY_KAFKA_TIMEOUT_SECONDS": "1",
        }
    )

    async def scenario(client: Client, gateway: Gateway) -> None:
        answer = await client.post("/events", data=orjson.dumps(event("lead.created", "g-1")), headers=bearer())
        assert answer.status == 503 and answer.headers["Retry-After"] == "5"
        empty = await client.post("/events", data=b"[]", headers=bearer())  # nothing to wait for Kafka for
        assert empty.status == 200 and (await empty.json())["published"] == 0
        scraped = await (await client.get("/metrics")).text()
        assert metric_value(scraped, "lifecycle_gateway_requests_total", source="native", outcome="unavailable") == 1

    serve(settings_, scenario)


@settings(max_examples=150, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
@given(
    path=st.sampled_from(["/events", "/webhooks/stripe", "/webhooks/pipedrive", "/webhooks/zendesk"]),
    body=st.binary(max_size=300)
    | st.builds(
        orjson.dumps,
        st.recursive(
            st.none() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=8),
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
            max_leaves=8,
        ),
    ),
    kind=st.sampled_from(["application/json", "application/x-ndjson", "text/plain", "application/cloudevents+json"]),
    auth=st.sampled_from([None, "Bearer nope", "Basic Zm9vOmJhcg==", "t=1,v1=00"]),
)
def test_fuzzed_unauthenticated_requests_are_refused_never_a_500(
    fuzz_client: Callable[[str, bytes, dict[str, str]], int], path: str, body: bytes, kind: str, auth: str | None
) -> None:
    headers = {"Content-Type": kind}
    if auth is not None:
        headers["Stripe-Signature" if auth.startswith("t=") else "Authorization"] = auth
    assert fuzz_client(path, body, headers) in (401, 404, 413, 415)


@pytest.fixture(scope="module")
def fuzz_client(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One gateway for every fuzzed request (on topics no other test reads); at the end, nothing of
    them may be on a topic."""
    suffix = tmp_path_factory.mktemp("fuzz").name.replace("_", "-")
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "LIFECYCLE_TOPIC_LEADS": f"fuzz-leads-{suffix}",
        "LIFECYCLE_TOPIC_DEALS": f"fuzz-deals-{suffix}",
        "LIFECYCLE_TOPIC_TICKETS": f"fuzz-tickets-{suffix}",
        "LIFECYCLE_TOPIC_DLQ": f"fuzz-dlq-{suffix}",
        "LIFECYCLE_GATEWAY_TOKEN": TOKEN,
        "LIFECYCLE_GATEWAY_STRIPE_SECRET": STRIPE_SECRET,
        "LIFECYCLE_GATEWAY_ZENDESK_SECRET": "zendesk-secret",
        "LIFECYCLE_GATEWAY_PIPEDRIVE_USERNAME": "lifecycle",
        "LIFECYCLE_GATEWAY_PIPEDRIVE_PASSWORD": "pipedrive-password",
    }
    settings_ = settings_from(env)
    ensure_topics(settings_)
    gateway = Gateway(settings_, CollectorRegistry())
    loop = asyncio.new_event_loop()
    client: Client = TestClient(TestServer(gateway.app()), loop=loop)
    loop.run_until_complete(client.start_server())

    def post(path: str, body: bytes, headers: dict[str, str]) -> int:
        async def send() -> int:
            return (await client.post(path, data=body, headers=headers)).status

        return loop.run_until_complete(send())

    yield post
    loop.run_until_complete(client.close())
    loop.close()
    assert not any(records(settings_).values()), "a refused request published something"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the gateway reads no database
def test_signed_webhooks_reach_the_read_model_through_a_real_worker(
    worker_env: dict[str, str], gateway_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**worker_env, **{k: v for k, v in gateway_env.items() if k.startswith("LIFECYCLE_GATEWAY")}}
    settings_ = settings_from(env)
    ensure_topics(settings_)
    body = stripe_invoice_paid("evt_won", "cus_42")

    async def scenario(client: Client, gateway: Gateway) -> None:
        for _ in range(2):  # Stripe's retry of the same event: the same event id, a duplicate downstream
            answer = await client.post("/webhooks/stripe", data=body, headers=stripe_signed(body))
            assert answer.status == 200 and (await answer.json())["published"] == 1

    with running_worker(env, tmp_path / "worker.log") as worker:
        serve(settings_, scenario)
        wait_for_value(
            worker.metrics,
            lambda text: metric_value(text, "lifecycle_events_total") >= 2,
            timeout=60,
            what="the worker to take both deliveries",
        )
        text = worker.metrics()
        assert metric_value(text, "lifecycle_events_total", outcome="duplicate") == 1
    journey = customer_journey(make_engine(settings_.sqlalchemy_url), "cus_42")
    assert journey is not None and journey["stage"] == "customer"
    assert [deal["kind"] for deal in journey["deals"]] == ["new_business"]


def test_with_kafka_stopped_it_answers_503_and_once_back_loses_nothing_and_never_sends_an_event_twice_itself(
    topic_names: dict[str, str], tmp_path: Path
) -> None:
    broker = LocalKafka(tmp_path / "kafka", partitions=2).start()
    try:
        env = {
            **topic_names,
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "LIFECYCLE_GATEWAY_TOKEN": TOKEN,
            "LIFECYCLE_GATEWAY_KAFKA_TIMEOUT_SECONDS": "2",
        }
        settings_ = settings_from(env)
        ensure_topics(settings_)
        before = [event("lead.created", f"k-{n}") for n in range(3)]
        during = [event("deal.won", f"k-{n}", deal_id=f"kd-{n}") for n in range(3)]
        attempts: list[int] = []  # the statuses of every attempt to publish ``during``

        async def scenario(client: Client, gateway: Gateway) -> None:
            assert (await client.post("/events", data=orjson.dumps(before), headers=bearer())).status == 200
            await asyncio.to_thread(broker.stop)
            down = await client.post("/events", data=orjson.dumps(during), headers=bearer())
            assert down.status == 503
            attempts.append(down.status)
            await asyncio.to_thread(broker.start)
            # the vendor retries until it gets a 2xx, as Stripe and Zendesk do
            deadline = time.monotonic() + 90
            while (again := await client.post("/events", data=orjson.dumps(during), headers=bearer())).status == 503:
                attempts.append(again.status)
                assert time.monotonic() < deadline, "the gateway did not get Kafka back"
                await asyncio.sleep(1)  # the vendor's back-off between retries, not a wait for an event
            attempts.append(again.status)
            assert again.status == 200 and (await again.json())["published"] == 3

        serve(settings_, scenario)
        ids = collections.Counter(orjson.loads(r.value)["event_id"] for rs in records(settings_).values() for r in rs)
        assert set(ids) == {e["event_id"] for e in [*before, *during]}  # nothing lost
        assert all(ids[e["event_id"]] == 1 for e in before)  # the idempotent producer's own retries: never twice
        # what a 503'd attempt handed the producer reaches Kafka once it is back, and each retry sends it
        # again under the same event ids: at most once an attempt, duplicates downstream (the worker's dedup)
        assert all(ids[e["event_id"]] <= len(attempts) for e in during)
    finally:
        broker.stop()


def test_a_gateway_started_before_kafka_answers_503_then_publishes_once_kafka_is_up(
    topic_names: dict[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The producer starts at the first request that needs it, and again after a start failed: a gateway
    deployed before its broker (or across a broker's restart at its start) serves once Kafka is there."""
    broker = LocalKafka(tmp_path / "kafka", port=free_port(), controller_port=free_port(), partitions=2)
    settings_ = settings_from(
        {
            **topic_names,
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "LIFECYCLE_GATEWAY_TOKEN": TOKEN,
            "LIFECYCLE_GATEWAY_KAFKA_TIMEOUT_SECONDS": "2",
        }
    )
    lead = event("lead.created", "late-1")

    async def scenario(client: Client, gateway: Gateway) -> None:
        attempts = await asyncio.gather(
            *(client.post("/events", data=orjson.dumps(lead), headers=bearer()) for _ in range(3))
        )
        assert [answer.status for answer in attempts] == [503, 503, 503]
        failed_starts = [r for r in caplog.records if r.getMessage().startswith("cannot reach Kafka")]
        assert len(failed_starts) == 1  # the three requests shared one start, they did not each try
        await asyncio.to_thread(broker.start)
        await asyncio.to_thread(ensure_topics, settings_)
        deadline = time.monotonic() + 60
        while (answer := await client.post("/events", data=orjson.dumps(lead), headers=bearer())).status == 503:
            assert time.monotonic() < deadline, "the gateway never started its producer once Kafka was up"
            await asyncio.sleep(1)  # the vendor's back-off between retries, not a wait for an event
        assert answer.status == 200 and (await answer.json())["published"] == 1

    try:
        serve(settings_, scenario)
        ids = [orjson.loads(r.value)["event_id"] for rs in records(settings_).values() for r in rs]
        assert ids == [lead["event_id"]]  # the 503s published nothing: no producer had taken them
    finally:
        broker.stop()
