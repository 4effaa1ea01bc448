"""Zendesk: its documented payloads map to the contract events docs/gateway/zendesk.md states (and those
validate), the rest is ignored or unmappable as stated, and requests are signed as Zendesk documents."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.contract.decoding import validate_document
from streams.domain.errors import ErrorClass, RefusedRequest, UnmappablePayload
from streams.gateway.mapping import Mapped, MappingOptions
from streams.gateway.vendors import zendesk

FIXTURES = Path(__file__).parent / "fixtures" / "zendesk"
BY_ORGANIZATION = MappingOptions(zendesk_customer="organization")
BY_REQUESTER = MappingOptions(zendesk_customer="requester")
ORG = "zendesk-org-8447346622462"
USER = "zendesk-user-8447388090494"


def fixture(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return document


def mapped(name: str, options: MappingOptions = BY_ORGANIZATION) -> list[dict[str, Any]]:
    result = zendesk.map_payload(fixture(name), options)
    assert result.ignored is None
    for event in result.events:
        validate_document(event)
    return list(result.events)


def envelope(event_type: str, event_id: str, occurred_at: str, customer_id: str = ORG) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": event_type,
        "customer_id": customer_id,
        "occurred_at": occurred_at,
        "schema_version": 1,
        "source": "zendesk",
        "ticket_id": "zendesk-ticket-5158",
    }


# -- event-subscribed webhooks: Zendesk's payloads ------------------------------------------------------


def test_ticket_created_is_ticket_opened() -> None:
    expected = envelope(
        "ticket.opened", "zendesk:cbe4028c-7239-495d-b020-f22348516046", "2025-01-08T10:12:07.672717Z"
    ) | {"channel": "web", "priority": "low"}  # via web_service (the API): the catch-all channel
    assert mapped("ticket_created.json") == [expected]


def test_status_changed_to_solved_is_ticket_resolved_with_the_documented_defaults() -> None:
    expected = envelope(
        "ticket.resolved", "zendesk:a8b9c1d2-3e4f-5a6b-7c8d-9e0f1a2b3c4d", "2025-01-08T16:45:20.987654Z"
    ) | {"handling_seconds": 0, "contacts": 1}
    assert mapped("ticket_status_changed_solved.json") == [expected]


def test_status_changed_from_solved_is_ticket_reopened() -> None:
    expected = envelope(
        "ticket.reopened", "zendesk:5f0c3e7a-91d4-4b8e-8c2a-6d1e0b7f4a93", "2025-01-09T09:02:11.204518Z"
    )
    assert mapped("ticket_status_changed_reopened.json") == [expected]


def test_an_agents_public_comment_is_ticket_responded() -> None:
    expected = envelope(
        "ticket.responded", "zendesk:d4f5c389-8f4a-4c2e-a1b9-8e4f39c71d52", "2025-01-08T14:25:30.123456Z"
    )
    assert mapped("ticket_comment_added.json") == [expected]


def test_customer_is_the_requester_when_configured_or_when_the_ticket_has_no_organization() -> None:
    assert [e["customer_id"] for e in mapped("ticket_created.json", BY_REQUESTER)] == [USER]
    for no_organization in (None, "", "0", 0):
        payload = fixture("ticket_created.json")
        payload["detail"]["organization_id"] = no_organization
        (event,) = zendesk.map_payload(payload, BY_ORGANIZATION).events
        assert event["customer_id"] == USER


def test_a_retried_webhook_maps_to_the_same_event_ids() -> None:
    for name in ("ticket_created.json", "ticket_status_changed_solved.json", "trigger_ticket_solved.json"):
        assert mapped(name) == mapped(name)


@pytest.mark.parametrize(
    ("via", "channel"),
    [
        ("email", "email"),
        ("mail", "email"),
        ("web", "web"),
        ("web_form", "web"),
        ("chat", "chat"),
        ("native_messaging", "chat"),
        ("messaging", "chat"),
        ("voice", "phone"),
        ("phone", "phone"),
        ("api", "web"),
        ("rule", "web"),
        ("something_new", "web"),
    ],
)
def test_channel_from_via(via: str, channel: str) -> None:
    payload = fixture("ticket_created.json")
    payload["detail"]["via"]["channel"] = via
    (event,) = zendesk.map_payload(payload, BY_ORGANIZATION).events
    assert event["channel"] == channel


@pytest.mark.parametrize(("priority", "expected"), [("URGENT", "urgent"), ("normal", "normal"), (None, "normal")])
def test_priority_absent_is_normal(priority: str | None, expected: str) -> None:
    payload = fixture("ticket_created.json")
    payload["detail"]["priority"] = priority
    (event,) = zendesk.map_payload(payload, BY_ORGANIZATION).events
    assert event["priority"] == expected
    del payload["detail"]["priority"]
    (event,) = zendesk.map_payload(payload, BY_ORGANIZATION).events
    assert event["priority"] == "normal"


# -- trigger bodies -------------------------------------------------------------------------------------


def test_trigger_ticket_solved_carries_handling_time_and_contacts() -> None:
    expected = envelope("ticket.resolved", "zendesk:solved:5158:2025-01-08T16:45:00Z", "2025-01-08T16:45:00Z") | {
        "handling_seconds": 1260,
        "contacts": 2,
    }
    assert mapped("trigger_ticket_solved.json") == [expected]


def test_trigger_ticket_solved_blank_fields_take_the_defaults() -> None:
    (event,) = mapped("trigger_ticket_solved_blank.json")
    assert event["customer_id"] == USER  # organization "" -> the requester
    assert (event["ticket_id"], event["handling_seconds"], event["contacts"]) == (
        "zendesk-ticket-5160",
        0,
        1,
    )  # "0" contacts -> 1


def test_trigger_ticket_reopened() -> None:
    expected = envelope("ticket.reopened", "zendesk:reopened:5158:2025-01-09T09:02:00Z", "2025-01-09T09:02:00Z")
    assert mapped("trigger_ticket_reopened.json") == [expected]


def test_trigger_satisfaction_good_is_5_bad_is_1() -> None:
    good = envelope("csat.submitted", "zendesk:csat:5158:2025-01-09T18:30:00Z", "2025-01-09T18:30:00Z")
    assert mapped("trigger_satisfaction_good.json") == [good | {"score": 5}]
    (bad,) = mapped("trigger_satisfaction_current_rating.json")  # "Bad, I'm unsatisfied"
    assert bad["score"] == 1


@pytest.mark.parametrize(
    ("rating", "score"),
    [("Good, I'm satisfied", 5), ("GOOD", 5), ("bad", 1), ("Bad with comment", 1), ("4", 4), (3, 3), (5.0, 5)],
)
def test_ratings(rating: Any, score: int) -> None:
    payload = fixture("trigger_satisfaction_good.json") | {"rating": rating}
    (event,) = zendesk.map_payload(payload, BY_ORGANIZATION).events
    assert event["score"] == score


def test_a_rating_offered_but_not_given_is_ignored() -> None:
    result = zendesk.map_payload(fixture("trigger_satisfaction_offered.json"), BY_ORGANIZATION)
    assert result.events == () and result.ignored
    blank = zendesk.map_payload(fixture("trigger_satisfaction_good.json") | {"rating": ""}, BY_ORGANIZATION)
    assert blank.events == () and blank.ignored


def test_trigger_and_event_customers_agree() -> None:
    """The same ticket's events from both paths belong to the same customer (else the second is a conflict)."""
    for options in (BY_ORGANIZATION, BY_REQUESTER):
        events = mapped("ticket_created.json", options) + mapped("trigger_ticket_solved.json", options)
        customers = {event["customer_id"] for event in events}
        assert len(customers) == 1


# -- ignored and unmappable -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["user_active_changed.json", "user_group_membership_created.json"])
def test_other_zendesk_event_types_are_ignored(name: str) -> None:
    result = zendesk.map_payload(fixture(name), BY_ORGANIZATION)
    assert result == Mapped(ignored=f"{fixture(name)['type']} is not followed")


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"current": "PENDING", "previous": "OPEN"}, "open to pending"),
        ({"current": "CLOSED", "previous": "SOLVED"}, "closing a solved ticket is no reopening"),
        ({"current": "SOLVED", "previous": "SOLVED"}, "no change"),
        ({"current": "OPEN"}, "previous unknown"),
    ],
)
def test_status_changes_other_than_solve_and_reopen_are_ignored(change: dict[str, str], why: str) -> None:
    payload = fixture("ticket_status_changed_solved.json") | {"event": change}
    result = zendesk.map_payload(payload, BY_ORGANIZATION)
    assert result.events == () and result.ignored, why


@pytest.mark.parametrize(
    ("comment", "why"),
    [
        ({"is_public": False}, "a private note"),
        ({"author": {"id": "8447388090494", "is_staff": False, "name": "Requester"}}, "the requester's reply"),
    ],
)
def test_comments_other_than_an_agents_public_reply_are_ignored(comment: dict[str, Any], why: str) -> None:
    payload = fixture("ticket_comment_added.json")
    payload["event"]["comment"] |= comment
    result = zendesk.map_payload(payload, BY_ORGANIZATION)
    assert result.events == () and result.ignored, why


def test_the_comment_that_opens_a_ticket_is_no_response() -> None:
    payload = fixture("ticket_comment_added.json")
    payload["detail"]["updated_at"] = payload["detail"]["created_at"]
    result = zendesk.map_payload(payload, BY_ORGANIZATION)
    assert result.events == () and result.ignored


def unmappable(payload: Any, options: MappingOptions = BY_ORGANIZATION) -> str:
    with pytest.raises(UnmappablePayload) as caught:
        zendesk.map_payload(payload, options)
    assert caught.value.error_class is ErrorClass.UNMAPPABLE
    return caught.value.reason


def without(payload: dict[str, Any], *path: str) -> dict[str, Any]:
    inner = payload
    for key in path[:-1]:
        inner = inner[key]
    del inner[path[-1]]
    return payload


def test_a_ticket_without_requester_or_organization_is_unmappable() -> None:
    assert "requester_id" in unmappable(fixture("ticket_created_prismatic.json"))
    assert "requester_id" in unmappable(fixture("ticket_created_prismatic.json"), BY_REQUESTER)
    assert "requester_id" in unmappable(without(fixture("ticket_created.json"), "detail", "requester_id"), BY_REQUESTER)


@pytest.mark.parametrize(
    "payload",
    [
        [],
        "zen:event-type:ticket.created",
        {},
        {"type": "custom"},
        without(fixture("ticket_created.json"), "id"),
        without(fixture("ticket_created.json"), "detail"),
        without(fixture("ticket_created.json"), "detail", "id"),
        fixture("ticket_created.json") | {"time": "yesterday"},
        without(without(fixture("ticket_created.json"), "time"), "detail", "updated_at"),
        fixture("ticket_status_changed_solved.json") | {"event": {}, "detail": {"id": "5158", "requester_id": "1"}},
        without(fixture("ticket_comment_added.json"), "event", "comment", "author"),
        fixture("ticket_comment_added.json") | {"event": {"comment": {"is_public": "yes", "author": {}}}},
        fixture("trigger_ticket_solved.json") | {"lifecycle_trigger": "ticket.closed"},
        fixture("trigger_ticket_solved.json") | {"ticket_id": ""},
        fixture("trigger_ticket_solved.json") | {"ticket_id": "#5158"},
        fixture("trigger_ticket_solved.json") | {"requester_id": "someone@example.com", "organization_id": ""},
        fixture("trigger_ticket_solved.json") | {"updated_at": "{{ticket.updated_at_with_timestamp}}"},
        fixture("trigger_ticket_solved.json") | {"handling_seconds": "{{ticket.ticket_field_360001}}"},
        fixture("trigger_ticket_solved.json") | {"handling_seconds": "-5"},
        fixture("trigger_ticket_solved.json") | {"handling_seconds": 40_000_000},
        fixture("trigger_ticket_solved.json") | {"contacts": "1.5"},
        fixture("trigger_ticket_solved.json") | {"contacts": True},
        fixture("trigger_satisfaction_good.json") | {"rating": "Bueno, estoy satisfecho"},
        fixture("trigger_satisfaction_good.json") | {"rating": "7"},
        without(fixture("trigger_satisfaction_good.json"), "rating"),
    ],
)
def test_unmappable(payload: Any) -> None:
    assert unmappable(payload)


def test_unknown_priority_is_unmappable() -> None:
    payload = fixture("ticket_created.json")
    payload["detail"]["priority"] = "CRITICAL"
    assert "priority" in unmappable(payload)


def test_a_long_event_id_is_hashed_within_the_contract() -> None:
    payload = fixture("ticket_created.json") | {"id": "x" * 300}
    (event,) = zendesk.map_payload(payload, BY_ORGANIZATION).events
    assert len(event["event_id"]) <= 128 and event["event_id"].startswith("zendesk:")
    validate_document(event)


# -- signatures -----------------------------------------------------------------------------------------

BODY = (FIXTURES / "ticket_created.json").read_bytes()
SIGNED_AT = "2025-01-08T10:12:08Z"
SIGNED_AT_EPOCH = datetime(2025, 1, 8, 10, 12, 8, tzinfo=UTC).timestamp()
SECRET = zendesk.TEST_SIGNING_SECRET


def signed(body: bytes = BODY, timestamp: str = SIGNED_AT, secret: str = SECRET) -> dict[str, str]:
    return {
        "X-Zendesk-Webhook-Signature": zendesk.expected_signature(body, timestamp, secret),
        "X-Zendesk-Webhook-Signature-Timestamp": timestamp,
        "Content-Type": "application/json",
    }


def refused(headers: dict[str, str], body: bytes = BODY, now: float = SIGNED_AT_EPOCH, secret: str = SECRET) -> str:
    with pytest.raises(RefusedRequest) as caught:
        zendesk.authenticate(body, headers, secret, now)
    assert caught.value.status == 401
    reason = caught.value.reason
    assert headers.get("X-Zendesk-Webhook-Signature", "@@") not in reason
    assert not any(part in reason for part in zendesk.signing_secrets(secret))
    return reason


def test_zendesk_go_vector_with_the_test_secret() -> None:
    """An independent vector: Zendesk's test secret, timestamp "1234", the file's exact bytes, timestamp first."""
    body = (FIXTURES / "user_group_membership_created.json").read_bytes()
    assert zendesk.expected_signature(body, "1234", SECRET) == "10IqYzYTLHRftNsNE+im0DeOM6/JactIRuy0XCHJ9B8="


def test_the_older_documented_vector_is_body_then_timestamp_and_refused() -> None:
    """Zendesk's older page signs BODY + TIMESTAMP, against its current formula; we follow the current one."""
    secret, body, timestamp = (
        "HRkRd4BeOAoUkfZr-mhauJT64rvBASlJRoIyPsd3zeA=",
        b'{"say": "hello"}',
        "2021-07-25T10:00:00Z",
    )
    signature = "tRDSF7URY8BLCDlaBcQ7FHu051Zk+aAB0NKMP53teMw="
    assert zendesk.expected_signature(body, timestamp, secret) != signature
    headers = {"X-Zendesk-Webhook-Signature": signature, "X-Zendesk-Webhook-Signature-Timestamp": timestamp}
    now = datetime(2021, 7, 25, 10, 0, tzinfo=UTC).timestamp()
    assert "does not match" in refused(headers, body=body, now=now, secret=secret)
    body_then_timestamp = zendesk.expected_signature(body + timestamp.encode(), "", secret)
    assert body_then_timestamp == signature


def test_good_signature() -> None:
    zendesk.authenticate(BODY, signed(), SECRET, SIGNED_AT_EPOCH)
    lower = {name.lower(): value for name, value in signed().items()}
    zendesk.authenticate(BODY, lower, SECRET, SIGNED_AT_EPOCH + 299)  # names in any case, within the window
    zendesk.authenticate(BODY, signed(timestamp="2025-01-08T11:12:08+01:00"), SECRET, SIGNED_AT_EPOCH - 299)
    zendesk.authenticate(b"", signed(body=b""), SECRET, SIGNED_AT_EPOCH)  # a request without a body


def test_bad_signature() -> None:
    assert "does not match" in refused(signed(), body=BODY + b" ")
    assert "does not match" in refused(signed(secret="another secret"))
    assert "does not match" in refused(signed() | {"X-Zendesk-Webhook-Signature": "not base64 at all é"})
    tampered = signed() | {"X-Zendesk-Webhook-Signature-Timestamp": "2025-01-08T10:12:09Z"}
    assert "does not match" in refused(tampered, now=SIGNED_AT_EPOCH + 1)


def test_stale_or_future_timestamp() -> None:
    assert "replay window" in refused(signed(), now=SIGNED_AT_EPOCH + 301)
    assert "replay window" in refused(signed(), now=SIGNED_AT_EPOCH - 301)
    assert "replay window" in refused(signed(), now=float("nan"))
    assert "ISO 8601" in refused(signed(timestamp="1234"))
    assert "ISO 8601" in refused(signed(timestamp="2025-01-08T10:12:08"))  # no zone


def test_missing_headers() -> None:
    assert "unsigned" in refused({})
    assert "unsigned" in refused({"X-Zendesk-Webhook-Signature-Timestamp": SIGNED_AT})
    assert "unsigned" in refused({"X-Zendesk-Webhook-Signature": signed()["X-Zendesk-Webhook-Signature"]})


def test_either_webhooks_secret() -> None:
    """Two webhooks (event-subscribed, trigger-connected), two secrets: the setting lists both."""
    both = f"events-webhook-secret, {SECRET}"
    zendesk.authenticate(BODY, signed(), both, SIGNED_AT_EPOCH)
    zendesk.authenticate(BODY, signed(secret="events-webhook-secret"), both, SIGNED_AT_EPOCH)
    assert "does not match" in refused(signed(secret="a third"), secret=both)
    assert zendesk.signing_secrets(" a ,, b ") == ("a", "b")


def test_no_secret_disables_the_source() -> None:
    for nothing in ("", " , "):
        with pytest.raises(RefusedRequest) as caught:
            zendesk.authenticate(BODY, signed(secret="x"), nothing, SIGNED_AT_EPOCH)
        assert caught.value.status == 404


# -- any JSON: mapped, ignored or unmappable, never another exception -----------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=20,
)
VALUES = JSON | st.sampled_from(["", "0", "5158", "SOLVED", "open", "good", "2025-01-08T16:45Z", "zen:event-type:x"])


def mutations() -> st.SearchStrategy[dict[str, Any]]:
    """Zendesk's own payloads and ours with fields replaced, removed or nested values swapped."""
    names = sorted(path.name for path in FIXTURES.glob("*.json"))
    return st.builds(mutate, st.sampled_from(names), st.lists(st.tuples(st.booleans(), VALUES), max_size=4), st.data())


def mutate(name: str, changes: list[tuple[bool, Any]], data: st.DataObject) -> dict[str, Any]:
    payload = fixture(name)
    for remove, value in changes:
        target = payload
        nested = sorted(key for key in ("detail", "event") if isinstance(payload.get(key), dict) and payload[key])
        if len(nested) > 0 and data.draw(st.booleans()):
            target = payload[data.draw(st.sampled_from(nested))]
        if not target:
            break
        key = data.draw(st.sampled_from(sorted(target)))
        if remove:
            del target[key]
        else:
            target[key] = value
    return payload


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=mutations() | JSON, options=st.sampled_from([BY_ORGANIZATION, BY_REQUESTER]))
def test_any_payload_maps_validly_or_is_refused_with_a_reason(payload: Any, options: MappingOptions) -> None:
    try:
        result = zendesk.map_payload(payload, options)
    except UnmappablePayload as exc:
        assert exc.reason
        return
    assert bool(result.events) != bool(result.ignored)
    for event in result.events:
        validate_document(event)
