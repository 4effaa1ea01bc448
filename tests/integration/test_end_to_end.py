"""Real broker, real `lifecycle worker` process, SQLite and PostgreSQL: events in, rows and metrics out."""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path

import orjson
import pytest
from kafka import KafkaProducer
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from streams.cli.processes import LIFECYCLE, running_worker
from streams.cli.simulator import simulate
from streams.db.engine import make_engine
from streams.db.models import Customer, Deal, StageTransition, Ticket
from streams.db.queries import stage_counts
from streams.kafka.admin import ensure_topics
from streams.kafka.dead_letters import read_dead_letters
from streams.kafka.publisher import EventPublisher
from streams.metrics.scraped import http_get, metric_value
from streams.settings import Settings
from tests.conftest import settings_from
from tests.integration.test_faults import count_messages, wait_until_published
from tests.support import event, row_count, wait_for, wait_for_value


def customer_count(settings: Settings) -> int:
    return row_count(settings.sqlalchemy_url, Customer)


def processed_total(metrics_text: str) -> float:
    return sum(
        metric_value(metrics_text, "lifecycle_events_total", outcome=outcome)
        for outcome in ("processed", "duplicate", "dead_lettered")
    )


def publish_raw(settings: Settings, messages: list[tuple[str, bytes | None, bytes | None]]) -> None:
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    for topic, key, value in messages:
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()


def net(text: str, name: str, **labels: str) -> float:
    """A counter less its ``*_retracted`` twin (docs/metrics.md, "Order-freedom: retractions")."""
    return metric_value(text, f"{name}_total", **labels) - metric_value(text, f"{name}_retracted_total", **labels)


def test_one_lead_created_goes_all_the_way_through(worker_env: dict[str, str], tmp_path: Path) -> None:
    settings = settings_from(worker_env)
    document = event("lead.created", customer_id="cust-e2e-1")
    with running_worker(worker_env, tmp_path / "worker.log") as worker:
        publish_raw(settings, [(settings.topic_leads, b"cust-e2e-1", orjson.dumps(document))])
        wait_for(lambda: customer_count(settings) == 1, timeout=60, what="the customer row")
        status, body = http_get(f"{worker.url}/customers/cust-e2e-1")
        assert status == 200
        journey = json.loads(body)
        assert journey["stage"] == "lead"
        assert (journey["churns"], journey["churned_at"], journey["referred_by"]) == (0, None, None)
        assert (journey["csat_band"], journey["nps_score"]) == ("none", None)
        assert journey["journey"] == [
            {
                "from": None,
                "to": "lead",
                "occurred_at": "2026-03-01T10:00:00Z",
                "event_id": document["event_id"],
                "previous_stage_entered_at": None,
                "seconds_in_previous_stage": None,
            }
        ]
        assert http_get(f"{worker.url}/customers/nobody")[0] == 404
    engine = make_engine(settings.sqlalchemy_url)
    with Session(engine) as session:
        row = session.get(Customer, "cust-e2e-1")
        assert row is not None and row.stage == "lead"


def test_simulated_stream_with_duplicates_shuffle_and_bad_input(worker_env: dict[str, str], tmp_path: Path) -> None:
    """>= 20,000 events through the real worker; rows and counters equal the simulator's outcome exactly."""
    settings = settings_from(worker_env)
    simulation = simulate(3800, seed=21)
    events = simulation.events
    assert len(events) >= 20000
    rng = random.Random(5)
    shuffled = events[:]
    rng.shuffle(shuffled)
    duplicates = rng.sample(events, 2000)
    bad: list[tuple[str, bytes | None, bytes | None, str]] = [
        (settings.topic_leads, b"c-x", b"{not json", "not_json"),
        (settings.topic_leads, b"c-x", b"[1, 2, 3]", "not_an_object"),
        (settings.topic_deals, b"c-x", orjson.dumps(event("deal.won", customer_id="c-x", amount=-5)), "invalid_field"),
        (
            settings.topic_deals,
            b"c-x",
            orjson.dumps({**event("deal.won", customer_id="c-x"), "type": "deal.exploded"}),
            "unknown_type",
        ),
        (settings.topic_leads, b"c-x", orjson.dumps(event("deal.won", customer_id="c-x")), "wrong_topic"),
        (
            settings.topic_tickets,
            b"c-x",
            orjson.dumps({**event("csat.submitted", customer_id="c-x"), "schema_version": 9}),
            "unsupported_schema_version",
        ),
        (settings.topic_tickets, b"c-y", orjson.dumps(event("csat.submitted", customer_id="c-x")), "key_mismatch"),
        (settings.topic_tickets, b"c-x", b"\xff\xfe\xfd", "not_json"),
        (
            settings.topic_tickets,
            b"c-x",
            orjson.dumps(event("nps.submitted", customer_id="c-x", score=11)),
            "invalid_field",
        ),
        (
            settings.topic_leads,
            b"c-x",
            orjson.dumps(event("lead.created", customer_id="c-x", referred_by="c-x")),
            "invalid_field",
        ),
        (settings.topic_tickets, b"c-x", orjson.dumps(event("customer.churned", customer_id="c-x")), "wrong_topic"),
    ]
    ensure_topics(settings)
    with running_worker(worker_env, tmp_path / "worker.log") as worker:
        with EventPublisher(settings) as publisher:
            for index, document in enumerate(shuffled):
                publisher.publish(document)
                if index % 2500 == 0:  # bad input in between valid events
                    topic, key, value, _ = bad[(index // 2500) % len(bad)]
                    publisher.send_raw(topic, key, value)
            for topic, key, value, _ in bad:
                publisher.send_raw(topic, key, value)
            for document in duplicates:
                publisher.publish(document)
        sent_bad = len(bad) + sum(1 for i in range(len(shuffled)) if i % 2500 == 0)
        total = len(shuffled) + len(duplicates) + sent_bad
        text = wait_for_value(
            worker.metrics,
            lambda t: processed_total(t) >= total,
            timeout=400,
            what=f"{total} events counted in /metrics",
        )
        assert processed_total(text) == total
        assert metric_value(text, "lifecycle_events_total", outcome="processed") == len(events)
        assert metric_value(text, "lifecycle_events_total", outcome="duplicate") == len(duplicates)
        assert metric_value(text, "lifecycle_events_total", outcome="dead_lettered") == sent_bad
        expected = simulation.expected
        assert metric_value(text, "lifecycle_conversions_total") == expected.conversions
        assert net(text, "lifecycle_deals_won") == expected.deals_won
        assert (
            metric_value(text, "lifecycle_tickets_first_contact_resolved_total") == expected.first_contact_resolutions
        )
        for score, count in expected.csat_by_score.items():
            assert net(text, "lifecycle_csat_responses", score=str(score)) == count
        for stage, count in expected.stages.items():
            assert metric_value(text, "lifecycle_customers", stage=stage) == count
        for currency, amount in expected.revenue_won.items():
            assert net(text, "lifecycle_revenue_won", currency=currency) == pytest.approx(amount)
        # what service earns: the shuffle re-labels kinds and bands, the figures net of it are the truth
        for kind, count in expected.deals_won_by_kind.items():
            assert net(text, "lifecycle_deals_won", kind=kind) == count
            for currency, amount in expected.revenue_won_by_kind[kind].items():
                assert net(text, "lifecycle_revenue_won", kind=kind, currency=currency) == pytest.approx(amount)
        assert expected.churns and net(text, "lifecycle_churns") == expected.churns
        for band, count in expected.churns_by_band.items():
            assert net(text, "lifecycle_churns", csat_band=band) == count
        assert metric_value(text, "lifecycle_win_backs_total") == expected.win_backs > 0
        assert metric_value(text, "lifecycle_referral_leads_total") == expected.referral_leads
        assert metric_value(text, "lifecycle_referral_conversions_total") == expected.referral_conversions
        for currency, amount in expected.referral_revenue.items():
            assert metric_value(text, "lifecycle_referral_revenue_total", currency=currency) == pytest.approx(amount)
        for category, count in expected.nps_by_category.items():
            assert metric_value(text, "lifecycle_nps_responses_total", category=category) == count
        # ?name[]= selects series (a cheap poll), read-model gauges included when asked for
        selected = http_get(worker.url + "/metrics?name[]=lifecycle_events_total&name[]=lifecycle_customers")[1]
        families = {line.split()[2] for line in selected.decode().splitlines() if line.startswith("# TYPE")}
        assert families == {"lifecycle_events_total", "lifecycle_customers"}
        assert metric_value(selected.decode(), "lifecycle_events_total") == total
        wait_until_published(settings, dead_letters=sent_bad)

    engine = make_engine(settings.sqlalchemy_url)
    assert stage_counts(engine) == dict(expected.stages)
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(Deal).where(Deal.status == "won")) == expected.deals_won
        assert session.scalar(select(func.count()).select_from(Ticket)) == expected.tickets_opened
        assert (
            session.scalar(select(func.count()).select_from(Ticket).where(Ticket.status == "open"))
            == expected.tickets_open
        )
        transitions = session.scalar(select(func.count()).select_from(StageTransition))
        unpublished = session.scalar(
            select(func.count()).select_from(StageTransition).where(StageTransition.published.is_(False))
        )
    assert unpublished == 0

    # every bad message is on the DLQ with the reason, bytes untouched
    letters = list(read_dead_letters(settings))
    assert len(letters) == sent_bad
    by_value = {letter.value: letter for letter in letters}
    for topic, _key, value, error_class in bad:
        assert by_value[value].error_class == error_class
        assert by_value[value].source_topic == topic
        assert by_value[value].reason

    # every transition the read model recorded is on the lifecycle topic
    assert count_messages(settings, settings.topic_lifecycle) == transitions


def run_cli(env: dict[str, str], *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([LIFECYCLE, *args], env=env, input=stdin, capture_output=True, timeout=300, check=False)


def test_publish_cli_dlq_replay_and_rebuild(worker_env: dict[str, str], tmp_path: Path) -> None:
    settings = settings_from(worker_env)
    simulation = simulate(300, seed=4)
    lines = b"".join(orjson.dumps(e) + b"\n" for e in simulation.events)
    bad_line = orjson.dumps(event("deal.won", customer_id="c-1", currency="euro")) + b"\n"
    with running_worker(worker_env, tmp_path / "worker.log") as worker:
        published = run_cli(worker_env, "publish", "-", stdin=lines + bad_line)
        assert published.returncode == 1, published.stderr
        assert b"currency" in published.stderr  # the rejected line is reported, the rest is sent
        assert f"published {len(simulation.events)} events; rejected 1".encode() in published.stdout
        # a message that fails only because the key is wrong, then "fixed upstream" and replayed
        fixable = event("lead.created", customer_id="late-1")
        publish_raw(settings, [(settings.topic_leads, None, orjson.dumps(fixable))])
        wait_for(lambda: len(list(read_dead_letters(settings))) == 1, timeout=60, what="the dead letter")
        listed = run_cli(worker_env, "dlq")
        assert b'"error_class": "key_mismatch"' in listed.stdout
        wait_for(
            lambda: processed_total(worker.metrics()) >= len(simulation.events) + 1,
            timeout=120,
            what="the published events",
        )
    before = stage_counts(make_engine(settings.sqlalchemy_url))
    assert before == dict(simulation.expected.stages)

    rebuilt = run_cli(worker_env, "rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr
    engine = make_engine(settings.sqlalchemy_url)
    assert stage_counts(engine) == before
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(Customer)) == simulation.expected.customers


def test_worker_survives_a_replayed_dead_letter(worker_env: dict[str, str], tmp_path: Path) -> None:
    """`lifecycle dlq replay` re-publishes the original bytes; still invalid, it lands on the DLQ again."""
    settings = settings_from(worker_env)
    ensure_topics(settings)
    publish_raw(settings, [(settings.topic_deals, b"c-1", b"garbage")])
    with running_worker(worker_env, tmp_path / "worker.log") as worker:
        wait_for(lambda: len(list(read_dead_letters(settings))) == 1, timeout=60, what="the first dead letter")
        replayed = run_cli(worker_env, "dlq", "replay", "--error-class", "not_json")
        assert replayed.returncode == 0, replayed.stderr
        assert b"replayed 1 messages" in replayed.stdout
        letters = wait_for_value(
            lambda: list(read_dead_letters(settings)),
            lambda ls: len(ls) == 2,
            timeout=60,
            what="the second dead letter",
        )
        assert {letter.value for letter in letters} == {b"garbage"}
        publish_raw(settings, [(settings.topic_leads, b"c-2", orjson.dumps(event("lead.created", customer_id="c-2")))])
        wait_for(lambda: customer_count(settings) == 1, timeout=60, what="a valid event after the bad ones")
        assert worker.process is not None and worker.process.poll() is None
