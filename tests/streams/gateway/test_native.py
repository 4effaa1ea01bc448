"""``POST /events``: one contract event, a JSON array of them, or NDJSON; and the bearer token."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from streams.contract.decoding import validate_document
from streams.domain.errors import RefusedRequest, UnmappablePayload
from streams.gateway.vendors import native

LEAD: dict[str, Any] = {
    "event_id": "web-1",
    "type": "lead.created",
    "customer_id": "acme",
    "occurred_at": "2026-03-01T12:00:00+01:00",
    "schema_version": 1,
    "lead_id": "l-1",
    "channel": "web",
}
WON: dict[str, Any] = {
    "event_id": "crm-2",
    "type": "deal.won",
    "customer_id": "acme",
    "occurred_at": "2026-03-02T09:30:00Z",
    "schema_version": 1,
    "deal_id": "d-1",
    "amount": 990,
    "currency": "USD",
    "owner": "ana",
    "kind": "new_business",
}
JSON = {"Content-Type": "application/json"}
NDJSON = {"Content-Type": "application/x-ndjson"}


def events(body: bytes, headers: dict[str, str]) -> list[dict[str, Any]]:
    result = native.map_request(body, headers)
    assert result.ignored is None
    return list(result.events)


def valid(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for event in found:
        validate_document(event)
    return found


def test_one_object_is_one_event_unchanged() -> None:
    assert valid(events(orjson.dumps(LEAD), JSON)) == [LEAD]


def test_an_array_is_its_events_in_order() -> None:
    assert valid(events(orjson.dumps([LEAD, WON]), JSON)) == [LEAD, WON]


def test_an_empty_array_is_no_event() -> None:
    assert events(b"[]", JSON) == []


def test_ndjson_is_one_event_a_line_blank_lines_skipped_crlf_read() -> None:
    body = orjson.dumps(LEAD) + b"\r\n\n   \r\n" + orjson.dumps(WON) + b"\n"
    assert valid(events(body, NDJSON)) == [LEAD, WON]
    assert valid(events(body, {"content-type": "application/x-ndjson; charset=utf-8"})) == [LEAD, WON]
    assert valid(events(body, {"Content-Type": "application/ndjson"})) == [LEAD, WON]


def test_a_json_media_type_with_parameters_or_suffix_is_json() -> None:
    assert events(orjson.dumps(LEAD), {"Content-Type": "application/json; charset=utf-8"}) == [LEAD]
    assert events(orjson.dumps(LEAD), {"Content-Type": "application/vnd.lifecycle+json"}) == [LEAD]


def test_without_content_type_json_then_ndjson() -> None:
    assert events(orjson.dumps([LEAD, WON]), {}) == [LEAD, WON]
    assert events(orjson.dumps(LEAD) + b"\n" + orjson.dumps(WON), {}) == [LEAD, WON]
    with pytest.raises(UnmappablePayload, match="line 2 is not JSON"):
        native.map_request(orjson.dumps(LEAD) + b"\n{oops", {})


def test_events_pass_through_unchanged_even_those_the_contract_refuses() -> None:
    refused = {**WON, "currency": "XXX", "unknown_extra": [1, 2]}
    assert events(orjson.dumps([refused]), JSON) == [refused]  # the publisher validates, and dead-letters it


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (orjson.dumps(LEAD) + b"\n{broken\n", "line 2 is not JSON"),
        (b"\n\n" + orjson.dumps(LEAD) + b"\n[1]\n", "line 4 is not a JSON object"),
        (b'{"amount": NaN}\n', "line 1 is not JSON"),
        (b'{"x": "\xff"}\n', "line 1 is not JSON"),
        (orjson.dumps(LEAD) + b"\n" + orjson.dumps([LEAD]), "line 2 is not a JSON object"),
        (b"  \n\r\n", "the body is empty"),
    ],
)
def test_an_ndjson_line_that_is_no_json_object_refuses_the_body_by_its_number(body: bytes, reason: str) -> None:
    with pytest.raises(UnmappablePayload, match=reason):
        native.map_request(body, NDJSON)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "the body is empty"),
        (b"not json", "the body is not JSON"),
        (b'{"amount": Infinity}', "the body is not JSON"),
        (b'"\\ud800"', "the body is not JSON"),
        (b"\xef\xbb\xbf{}", "the body is not JSON"),
        (orjson.dumps(LEAD) + b"\n" + orjson.dumps(WON), "the body is not JSON"),
        (b"42", "must be a JSON object"),
        (b"null", "must be a JSON object"),
        (orjson.dumps([LEAD, "x"]), "item 1 of the array is not a JSON object"),
        (orjson.dumps([[LEAD]]), "item 0 of the array is not a JSON object"),
    ],
)
def test_a_json_body_that_is_no_event_or_array_of_events_is_unmappable(body: bytes, reason: str) -> None:
    with pytest.raises(UnmappablePayload, match=reason):
        native.map_request(body, JSON)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml", ""])
def test_a_content_type_neither_json_nor_ndjson_is_415(content_type: str) -> None:
    with pytest.raises(RefusedRequest) as refused:
        native.map_request(orjson.dumps(LEAD), {"Content-Type": content_type})
    assert refused.value.status == 415


# -- the bearer token ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["Bearer t0ken-é", "bearer t0ken-é", "BEARER   t0ken-é  "])
def test_the_right_bearer_token_passes(value: str) -> None:
    native.authenticate_bearer({"authorization": value}, "t0ken-é")
    native.authenticate_bearer({"Authorization": value}, "t0ken-é")


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "no bearer token"),
        ({"Authorization": "Basic dTpw"}, "not a bearer token"),
        ({"Authorization": "Bearer"}, "not a bearer token"),
        ({"Authorization": "Bearer   "}, "not a bearer token"),
        ({"Authorization": "Bearer t0ken-é-and-more"}, "wrong bearer token"),
        ({"Authorization": "Bearer t0ken"}, "wrong bearer token"),
        ({"Authorization": "Bearer T0KEN-É"}, "wrong bearer token"),
    ],
)
def test_a_missing_or_wrong_bearer_token_is_401_without_the_token(headers: dict[str, str], reason: str) -> None:
    with pytest.raises(RefusedRequest, match=reason) as refused:
        native.authenticate_bearer(headers, "t0ken-é")
    assert refused.value.status == 401
    assert "t0ken" not in refused.value.reason


def test_without_a_configured_token_the_endpoint_is_disabled_not_open() -> None:
    for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Bearer x"}):
        with pytest.raises(RefusedRequest) as refused:
            native.authenticate_bearer(headers, "")
        assert refused.value.status == 404
