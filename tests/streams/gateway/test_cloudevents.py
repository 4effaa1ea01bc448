"""CloudEvents over HTTP, structured and binary mode, read by the official SDK; ``data`` is a contract event."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest
from cloudevents.core.bindings.http import to_binary, to_structured
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from streams.contract.decoding import validate_document
from streams.domain.errors import RefusedRequest, UnmappablePayload
from streams.gateway.vendors import cloudevents, native

CONTRACT_EVENT: dict[str, Any] = {
    "event_id": "crm-7f3a",
    "type": "deal.won",
    "customer_id": "acme",
    "occurred_at": "2026-03-01T12:00:00Z",
    "schema_version": 1,
    "source": "crm",
    "deal_id": "d-42",
    "amount": 1200.5,
    "currency": "EUR",
    "owner": "ana",
}
ATTRIBUTES = {"type": "com.example.lifecycle", "source": "/crm", "id": "ce-1", "specversion": "1.0"}


def sdk_event(data: Any = CONTRACT_EVENT, **attributes: Any) -> CloudEvent:
    return CloudEvent(attributes={**ATTRIBUTES, "datacontenttype": "application/json", **attributes}, data=data)


def only_event(body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    (event,) = cloudevents.map_request(body, headers).events
    validate_document(event)
    return event


def structured(document: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    return orjson.dumps(document), {"Content-Type": "application/cloudevents+json; charset=utf-8"}


def test_structured_mode_as_the_sdk_writes_it_passes_the_contract_event_through() -> None:
    message = to_structured(sdk_event(), JSONFormat())
    assert only_event(message.body, message.headers) == CONTRACT_EVENT


def test_binary_mode_as_the_sdk_writes_it_passes_the_contract_event_through() -> None:
    message = to_binary(sdk_event(), JSONFormat())
    assert any(name.startswith("ce-") for name in message.headers)
    assert only_event(message.body, message.headers) == CONTRACT_EVENT


def test_a_hand_written_binary_request_with_http_header_casing() -> None:
    headers = {
        "Content-Type": "application/json",
        "Ce-Specversion": "1.0",
        "Ce-Type": "com.example.lifecycle",
        "Ce-Source": "/crm",
        "Ce-Id": "A234-1234-1234",
        "Ce-Time": "2026-03-01T12:00:01Z",
    }
    assert only_event(orjson.dumps(CONTRACT_EVENT), headers) == CONTRACT_EVENT


def test_the_contract_event_keeps_its_own_event_id_not_the_cloudevent_id() -> None:
    body, headers = structured({**ATTRIBUTES, "id": "something-else", "data": CONTRACT_EVENT})
    assert only_event(body, headers)["event_id"] == "crm-7f3a"


def test_without_datacontenttype_data_is_json() -> None:
    body, headers = structured({**ATTRIBUTES, "data": CONTRACT_EVENT})
    assert only_event(body, headers) == CONTRACT_EVENT


def test_a_json_media_type_with_a_suffix_is_json() -> None:
    body, headers = structured(
        {**ATTRIBUTES, "datacontenttype": "application/vnd.lifecycle+json", "data": CONTRACT_EVENT}
    )
    assert only_event(body, headers) == CONTRACT_EVENT


def test_data_base64_of_json_is_read() -> None:
    encoded = base64.b64encode(orjson.dumps(CONTRACT_EVENT)).decode()
    body, headers = structured({**ATTRIBUTES, "datacontenttype": "application/json", "data_base64": encoded})
    assert only_event(body, headers) == CONTRACT_EVENT


def test_a_cloudevents_0_3_event_is_read_too() -> None:
    body, headers = structured({**ATTRIBUTES, "specversion": "0.3", "data": CONTRACT_EVENT})
    assert only_event(body, headers) == CONTRACT_EVENT


def test_an_event_the_contract_refuses_is_passed_for_the_publisher_to_dead_letter() -> None:
    invalid = {**CONTRACT_EVENT, "amount": -1}
    body, headers = structured({**ATTRIBUTES, "data": invalid})
    assert cloudevents.map_request(body, headers).events == (invalid,)


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ({**ATTRIBUTES, "datacontenttype": "application/xml", "data": "<deal/>"}, "is not JSON"),
        ({**ATTRIBUTES, "datacontenttype": "text/plain", "data": "hello"}, "is not JSON"),
        ({**ATTRIBUTES}, "must be one contract event"),
        ({**ATTRIBUTES, "data": [CONTRACT_EVENT]}, "must be one contract event"),
        ({**ATTRIBUTES, "data": "a string"}, "must be one contract event"),
        ({**ATTRIBUTES, "data_base64": base64.b64encode(b"not json").decode()}, "data is not JSON"),
        ({key: value for key, value in ATTRIBUTES.items() if key != "source"} | {"data": {}}, "not a CloudEvent"),
        ({key: value for key, value in ATTRIBUTES.items() if key != "type"} | {"data": {}}, "not a CloudEvent"),
        ({**ATTRIBUTES, "specversion": "2.0", "data": CONTRACT_EVENT}, "not a CloudEvent"),
        ({**ATTRIBUTES, "time": "not a time", "data": CONTRACT_EVENT}, "not a CloudEvent"),
        ({**ATTRIBUTES, "time": 12, "data": CONTRACT_EVENT}, "not a CloudEvent"),
        (CONTRACT_EVENT, "not a CloudEvent"),  # a bare contract event: no specversion
    ],
)
def test_structured_requests_that_carry_no_contract_event_are_unmappable(document: dict[str, Any], reason: str) -> None:
    body, headers = structured(document)
    with pytest.raises(UnmappablePayload, match=reason):
        cloudevents.map_request(body, headers)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[1, 2]",
        b'"a string"',
        b'{"specversion": "1.0", "type": "t", "source": "s", "id": "1", "data": {"amount": NaN}}',
        b'{"specversion": "1.0", "type": "t", "source": "s", "id": "1", "data": {"x": "\\ud800"}}',
        b'\xff{"specversion": "1.0"}',
    ],
)
def test_structured_bodies_that_are_not_strict_json_objects_are_unmappable(body: bytes) -> None:
    with pytest.raises(UnmappablePayload, match="not a CloudEvent"):
        cloudevents.map_request(body, {"Content-Type": "application/cloudevents+json"})


BINARY = {"ce-specversion": "1.0", "ce-type": "t", "ce-source": "s", "ce-id": "1"}


@pytest.mark.parametrize(
    ("headers", "body", "reason"),
    [
        ({**BINARY, "Content-Type": "text/plain"}, b"hello", "is not JSON"),
        ({**BINARY, "Content-Type": "application/json"}, b"", "must be one contract event"),
        ({**BINARY, "Content-Type": "application/json"}, b"[1]", "must be one contract event"),
        ({**BINARY, "Content-Type": "application/json"}, b"{broken", "not a CloudEvent"),
        ({**BINARY, "Content-Type": "application/json"}, b'{"amount": Infinity}', "not a CloudEvent"),
        ({**BINARY, "ce-time": "yesterday"}, orjson.dumps(CONTRACT_EVENT), "not a CloudEvent"),
        ({**BINARY, "ce-source": ""}, orjson.dumps(CONTRACT_EVENT), "not a CloudEvent"),
        ({"ce-specversion": "1.0", "ce-type": "t", "ce-id": "1"}, orjson.dumps(CONTRACT_EVENT), "not a CloudEvent"),
    ],
)
def test_binary_requests_that_carry_no_contract_event_are_unmappable(
    headers: dict[str, str], body: bytes, reason: str
) -> None:
    with pytest.raises(UnmappablePayload, match=reason):
        cloudevents.map_request(body, headers)


BATCH = {"Content-Type": "application/cloudevents-batch+json"}


def test_batched_mode_is_each_event_of_the_batch_in_order() -> None:
    second = {**CONTRACT_EVENT, "event_id": "crm-7f3b", "deal_id": "d-43"}
    documents = [orjson.loads(to_structured(sdk_event(data), JSONFormat()).body) for data in (CONTRACT_EVENT, second)]
    result = cloudevents.map_request(orjson.dumps(documents), BATCH)
    assert result.events == (CONTRACT_EVENT, second)
    for event in result.events:
        validate_document(event)


def test_an_empty_batch_is_no_event() -> None:
    assert cloudevents.map_request(b"[]", BATCH).events == ()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{broken", "the CloudEvents batch is not JSON"),
        (b'[{"data": {"amount": NaN}}]', "the CloudEvents batch is not JSON"),
        (orjson.dumps({**ATTRIBUTES, "data": CONTRACT_EVENT}), "a JSON array of events"),
        (orjson.dumps([{**ATTRIBUTES, "data": CONTRACT_EVENT}, 7]), "event 1 of the batch is not a CloudEvent"),
        (orjson.dumps([CONTRACT_EVENT]), "event 0 of the batch is not a CloudEvent"),
        (orjson.dumps([{**ATTRIBUTES, "data": [1]}]), "event 0 of the batch: the CloudEvent's data must be"),
        (orjson.dumps([{**ATTRIBUTES, "datacontenttype": "text/csv", "data": "a,b"}]), "event 0 of the batch: data"),
    ],
)
def test_a_batch_with_anything_but_cloudevents_of_contract_events_is_unmappable(body: bytes, reason: str) -> None:
    with pytest.raises(UnmappablePayload, match=reason):
        cloudevents.map_request(body, BATCH)


def test_authentication_is_the_bearer_token() -> None:
    """CloudEvents come to ``POST /events``, behind its bearer token."""
    native.authenticate_bearer({"Authorization": "Bearer t0ken"}, "t0ken")
    with pytest.raises(RefusedRequest) as refused:
        native.authenticate_bearer({"Authorization": "Bearer other"}, "t0ken")
    assert refused.value.status == 401
