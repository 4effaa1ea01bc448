"""Hostile and broken input against the real worker: it never dies, every bad message is on the DLQ.

Hypothesis generates the malformed messages (>= 10,000); they are interleaved with a valid simulated
stream, and afterwards every valid event must be in the read model.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.cli.processes import running_worker
from streams.cli.simulator import simulate
from streams.contract.vocabulary import EVENT_TOPICS
from streams.kafka.admin import ensure_topics
from streams.kafka.dead_letters import read_dead_letters
from streams.kafka.publisher import EventPublisher
from streams.metrics.scraped import metric_value
from tests.conftest import settings_from
from tests.integration.test_faults import committed_events, wait_until_published
from tests.support import event, wait_for_value

BAD_MESSAGES = 10_000

STRING_FIELDS = ["event_id", "customer_id", "type", "occurred_at"]
NOT_A_STRING = st.one_of(
    st.none(),
    st.integers(-(2**63), 2**63 - 1),
    st.booleans(),
    st.lists(st.integers(0, 9), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(0, 9), max_size=2),
)
NOT_A_NUMBER = st.one_of(st.none(), st.text(max_size=5), st.booleans(), st.lists(st.integers(0, 9), max_size=2))


@st.composite
def malformed(draw: st.DrawFn) -> tuple[str, bytes | None, bytes | None]:
    """(contract topic, key, value) of a message the pipeline must reject."""
    kind = draw(
        st.sampled_from(
            ["bytes", "bad_utf8", "wrong_type", "missing", "nan", "negative_handling", "score", "no_zone",
             "huge_id", "key_mismatch", "deep", "null_value", "wrong_topic", "amount_type", "nps_score",
             "deal_kind", "referral", "churn_reason"]
        )
    )  # fmt: skip
    base_type = draw(st.sampled_from(sorted(EVENT_TOPICS)))
    document: dict[str, Any] = event(base_type, customer_id="hostile")
    topic = EVENT_TOPICS[base_type]
    key: bytes | None = b"hostile"
    if kind == "bytes":
        raw = draw(st.binary(min_size=0, max_size=200))
        return topic, key, b"\x00" + raw  # a NUL first: never a JSON object
    if kind == "bad_utf8":
        return topic, key, b'{"event_id": "\xff\xfe"}'
    if kind == "wrong_type":
        document[draw(st.sampled_from(STRING_FIELDS))] = draw(NOT_A_STRING)
    elif kind == "missing":
        del document[draw(st.sampled_from([*STRING_FIELDS, "schema_version"]))]
    elif kind == "nan":
        document = event("deal.won", customer_id="hostile")
        topic = "deals"
        value = orjson.dumps({**document, "amount": 0}).replace(
            b'"amount":0', b'"amount":' + draw(st.sampled_from([b"NaN", b"Infinity", b"-Infinity"]))
        )
        return topic, key, value
    elif kind == "negative_handling":
        document, topic = (
            event("ticket.resolved", customer_id="hostile", handling_seconds=-draw(st.floats(0.001, 1e9))),
            "tickets",
        )
    elif kind == "score":
        document, topic = (
            event("csat.submitted", customer_id="hostile", score=draw(st.sampled_from([0, 6, -1, 100]))),
            "tickets",
        )
    elif kind == "no_zone":
        document["occurred_at"] = draw(
            st.sampled_from(["2026-03-01T10:00:00", "2026-03-01", "yesterday", "2026-13-01T00:00:00Z"])
        )
    elif kind == "huge_id":
        document["event_id"] = "x" * draw(st.integers(129, 10_240))
    elif kind == "key_mismatch":
        key = draw(st.sampled_from([b"someone-else", b"", None]))
    elif kind == "deep":
        depth = draw(st.integers(1100, 3000))
        return topic, key, b'{"a":' * depth + b"1" + b"}" * depth
    elif kind == "null_value":
        return topic, key, draw(st.sampled_from([None, b"null", b"[]", b'"text"', b"42"]))
    elif kind == "wrong_topic":
        topic = draw(st.sampled_from(sorted({"leads", "deals", "tickets"} - {topic})))
    elif kind == "amount_type":
        document, topic = event("deal.opened", customer_id="hostile", amount=draw(NOT_A_NUMBER)), "deals"
    elif kind == "nps_score":
        score = draw(st.sampled_from([-1, 11, 7.5, "9", None, True]))
        document, topic = event("nps.submitted", customer_id="hostile", score=score), "tickets"
    elif kind == "deal_kind":
        deal_type = draw(st.sampled_from(["deal.opened", "deal.won"]))
        bad_kind = draw(st.sampled_from(["upsell", "", "RENEWAL", 1, None]))
        document, topic = event(deal_type, customer_id="hostile", kind=bad_kind), "deals"
    elif kind == "referral":  # itself, or not a customer id
        referrer = draw(st.sampled_from(["hostile", "", "x" * 65, 42, None, "a\x00b"]))
        document, topic = event("lead.created", customer_id="hostile", referred_by=referrer), "leads"
    elif kind == "churn_reason":
        reason = draw(st.sampled_from(["", "r" * 257, 3, ["price"], "a\x00b"]))
        document, topic = event("customer.churned", customer_id="hostile", reason=reason), "deals"
    return topic, key, orjson.dumps(document)


def generate_malformed(count: int) -> list[tuple[str, bytes | None, bytes | None]]:
    collected: list[tuple[str, bytes | None, bytes | None]] = []

    @settings(max_examples=count // 5, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(st.lists(malformed(), min_size=5, max_size=5))
    def collect(batch: list[tuple[str, bytes | None, bytes | None]]) -> None:
        collected.extend(batch)

    collect()
    return collected[:count]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_worker_survives_ten_thousand_malformed_messages(worker_env: dict[str, str], tmp_path: Path) -> None:
    settings_ = settings_from(worker_env)
    bad = generate_malformed(BAD_MESSAGES)
    assert len(bad) == BAD_MESSAGES
    valid = simulate(1500, seed=9).events
    ensure_topics(settings_)
    rng = random.Random(3)
    with running_worker(worker_env, tmp_path / "worker.log") as worker:
        with EventPublisher(settings_) as publisher:
            pending = list(bad)
            for document in valid:
                publisher.publish(document)
                for _ in range(rng.randint(0, 14)):
                    if pending:
                        topic, key, value = pending.pop()
                        publisher.send_raw(settings_.source_topics[topic], key, value)
            for topic, key, value in pending:
                publisher.send_raw(settings_.source_topics[topic], key, value)
        text = wait_for_value(
            worker.metrics,
            lambda t: metric_value(t, "lifecycle_events_total") >= len(bad) + len(valid),
            timeout=600,
            what="every message to be consumed",
        )
        assert metric_value(text, "lifecycle_events_total", outcome="dead_lettered") == len(bad)
        assert metric_value(text, "lifecycle_events_total", outcome="processed") == len(valid)
        assert worker.process is not None and worker.process.poll() is None
        wait_until_published(settings_, dead_letters=len(bad))
    assert committed_events(settings_) == len(valid)
    letters = list(read_dead_letters(settings_))
    assert len(letters) == len(bad)
    assert all(letter.reason and letter.error_class for letter in letters)
    assert sorted((v or b"") for _, _, v in bad) == sorted((letter.value or b"") for letter in letters)
