from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

import schemas
from streams.contract.decoding import decode_message, validate_document
from streams.contract.vocabulary import EVENT_TOPICS
from streams.domain.errors import InvalidEvent
from tests.support import event


def _decode(document: Any, *, key: bytes | None = b"c-1", topic: str | None = None, raw: bytes | None = None) -> Any:
    value = raw if raw is not None else orjson.dumps(document)
    return decode_message(value, key, topic)


@pytest.mark.parametrize("event_type", sorted(EVENT_TOPICS))
def test_every_type_has_a_schema_and_a_valid_example(event_type: str) -> None:
    parsed = validate_document(event(event_type))
    assert parsed.type == event_type
    assert EVENT_TOPICS[parsed.type] == schemas.load_schemas()[event_type]["x-topic"]


def test_schema_files_are_valid_json_with_ids() -> None:
    for path in schemas.SCHEMA_DIR.glob("*.json"):
        document = json.loads(path.read_text())
        assert document["$id"] == schemas.SCHEMA_BASE_URI + path.name


def test_occurred_at_is_normalised_to_utc() -> None:
    parsed = validate_document(event("lead.created", at="2026-03-01T12:00:00+02:00"))
    assert parsed.occurred_at.isoformat() == "2026-03-01T10:00:00"


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("2026-03-01t10:00:00z", "2026-03-01T10:00:00"),  # RFC 3339 allows lower case
        ("2026-03-01 10:00:00+01:00", "2026-03-01T09:00:00"),
        ("2026-03-01T10:00:00.123456789Z", "2026-03-01T10:00:00.123456"),  # kept to the microsecond
        ("0001-01-01T01:30:00+01:00", "0001-01-01T00:30:00"),
    ],
)
def test_times_the_schema_accepts_are_decoded(text: str, utc: str) -> None:
    assert validate_document(event("lead.created", at=text)).occurred_at.isoformat() == utc


def test_schema_version_one_as_a_float_is_version_one() -> None:
    assert validate_document({**event("lead.created"), "schema_version": 1.0}).type == "lead.created"


def test_unknown_extra_fields_are_accepted() -> None:
    assert validate_document(event("lead.created", campaign="spring", nested={"a": 1})).event_id


@pytest.mark.parametrize(
    ("document", "error_class", "words"),
    [
        ([1, 2], "not_an_object", "JSON object"),
        ({**event("lead.created"), "type": "lead.teleported"}, "unknown_type", "unknown event type"),
        ({**event("lead.created"), "type": "envelope"}, "unknown_type", "unknown event type"),
        ({k: v for k, v in event("lead.created").items() if k != "type"}, "invalid_field", "type"),
        ({**event("lead.created"), "type": 42}, "invalid_field", "type"),
        # the envelope is checked with a known type too (its schema includes the envelope)
        ({**event("deal.won"), "occurred_at": 5}, "invalid_field", "occurred_at"),
        ({**event("lead.created"), "schema_version": 2}, "unsupported_schema_version", "newer"),
        ({**event("lead.created"), "schema_version": 0}, "invalid_field", "schema_version"),
        ({k: v for k, v in event("lead.created").items() if k != "event_id"}, "invalid_field", "event_id"),
        (event("lead.created", channel="carrier-pigeon"), "invalid_field", "channel"),
        (event("deal.won", amount=-1), "invalid_field", "amount"),
        (event("deal.won", amount="100"), "invalid_field", "amount"),
        (event("deal.won", currency="eur"), "invalid_field", "currency"),
        (event("ticket.resolved", handling_seconds=-5), "invalid_field", "handling_seconds"),
        (event("ticket.resolved", contacts=0), "invalid_field", "contacts"),
        (event("csat.submitted", score=0), "invalid_field", "score"),
        (event("csat.submitted", score=6), "invalid_field", "score"),
        (event("csat.submitted", score=True), "invalid_field", "score"),
        (event("lead.created", at="2026-03-01T10:00:00"), "invalid_field", "occurred_at"),
        (event("lead.created", at="2026-02-30T10:00:00Z"), "invalid_field", "occurred_at"),
        (event("lead.created", event_id="x" * 129), "invalid_field", "event_id"),
        ({**event("lead.created"), "customer_id": None}, "invalid_field", "customer_id"),
        # times the schema's pattern lets through but UTC cannot hold
        (event("lead.created", at="0001-01-01T00:30:00+01:00"), "invalid_field", "outside years 1-9999"),
        (event("lead.created", at="9999-12-31T23:59:59-01:00"), "invalid_field", "outside years 1-9999"),
        # a leap second and an offset of 99 hours: refused by the schema itself, not later
        (event("lead.created", at="2026-06-30T23:59:60Z"), "invalid_field", "must match pattern"),
        (event("lead.created", at="2026-06-30T10:00:00+99:00"), "invalid_field", "must match pattern"),
        # JSON Schema's integer holds 2.0: it is version 2
        ({**event("lead.created"), "schema_version": 2.0}, "unsupported_schema_version", "newer"),
        # NUL in any free-text field the pipeline stores or labels
        *(
            (event(event_type, **{field: "a\x00b"}), "invalid_field", f"data.{field} must not contain a NUL")
            for event_type, field in (
                ("lead.created", "customer_id"),
                ("lead.created", "event_id"),
                ("lead.created", "owner"),
                ("deal.won", "deal_id"),
                ("deal.won", "owner"),
                ("ticket.opened", "ticket_id"),
                ("csat.submitted", "ticket_id"),
            )
        ),
        (event("deal.won", currency="ABC"), "invalid_field", "ISO 4217"),
        (event("deal.opened", currency="QQQ"), "invalid_field", "ISO 4217"),
    ],
)
def test_invalid_documents_say_why(document: Any, error_class: str, words: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        _decode(document, key=b"c-1")
    assert caught.value.error_class == error_class
    assert words in caught.value.reason


@pytest.mark.parametrize(
    ("raw", "error_class"),
    [
        (b"not json", "not_json"),
        (b"\xff\xfe{}", "not_json"),
        (b'{"amount": NaN}', "not_json"),
        (b"[" * 5000 + b"]" * 5000, "not_json"),
        (b" " * 70000, "too_large"),
    ],
)
def test_undecodable_bytes_are_rejected(raw: bytes, error_class: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        _decode(None, raw=raw)
    assert caught.value.error_class == error_class


def test_tombstone_is_rejected() -> None:
    with pytest.raises(InvalidEvent) as caught:
        decode_message(None, b"c-1")
    assert caught.value.error_class == "empty_message"


def test_key_must_match_customer_id() -> None:
    with pytest.raises(InvalidEvent) as caught:
        _decode(event("lead.created", customer_id="c-1"), key=b"c-2")
    assert caught.value.error_class == "key_mismatch"
    with pytest.raises(InvalidEvent):
        _decode(event("lead.created"), key=None)


def test_type_must_be_on_its_topic() -> None:
    with pytest.raises(InvalidEvent) as caught:
        _decode(event("deal.won"), topic="leads")
    assert caught.value.error_class == "wrong_topic"
    assert _decode(event("deal.won"), topic="deals").type == "deal.won"
