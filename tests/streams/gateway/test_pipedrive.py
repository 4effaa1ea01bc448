"""Pipedrive webhooks v2 -> contract events, on Pipedrive's own documented samples (fixtures/pipedrive)."""

from __future__ import annotations

import base64
import copy
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.contract.decoding import validate_document
from streams.domain.errors import RefusedRequest, UnmappablePayload
from streams.gateway.mapping import Mapped, MappingOptions
from streams.gateway.vendors import pipedrive

FIXTURES = Path(__file__).parent / "fixtures" / "pipedrive"
ORGANIZATION = MappingOptions(pipedrive_customer="organization")
PERSON = MappingOptions(pipedrive_customer="person")


def fixture(name: str) -> dict[str, Any]:
    document: dict[str, Any] = orjson.loads((FIXTURES / f"{name}.json").read_bytes())
    return document


def mapped(payload: Any, options: MappingOptions = ORGANIZATION) -> Mapped:
    result = pipedrive.map_payload(payload, options)
    for event in result.events:
        validate_document(event)
    return result


def basic(user: bytes, password: bytes) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(user + b":" + password).decode()}


# -- every documented sample --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "types", "ignored"),
    [
        ("create-deal", ["deal.opened"], None),
        ("deal-won", ["deal.won"], None),
        ("deal-lost", ["deal.lost"], None),
        ("create-lead", ["lead.created"], None),
        ("update-deal", [], "change.deal without a change of status is not followed"),
        ("delete-deal", [], "delete.deal is not followed"),
        ("update-lead", [], "change.lead is not followed"),
        ("create-organization", [], "create.organization is not followed"),
        ("update-organization", [], "change.organization is not followed"),
        ("create-person", [], "create.person is not followed"),
        ("delete-person", [], "delete.person is not followed"),
        ("create-activity", [], "create.activity is not followed"),
        ("update-user", [], "change.user is not followed"),
    ],
)
@pytest.mark.parametrize("options", [ORGANIZATION, PERSON])
def test_each_documented_sample_maps_or_is_ignored(
    name: str, types: list[str], ignored: str | None, options: MappingOptions
) -> None:
    result = mapped(fixture(name), options)
    assert [event["type"] for event in result.events] == types
    assert result.ignored == ignored


def test_a_created_deal_is_opened_with_its_value_currency_and_owner() -> None:
    (event,) = mapped(fixture("create-deal")).events
    assert event == {
        "event_id": "pipedrive:71825ee0-0054-4267-b5fd-d28b7a414212:deal.opened",
        "type": "deal.opened",
        "customer_id": "pipedrive-org-1",
        "occurred_at": "2022-11-24T13:18:55Z",
        "schema_version": 1,
        "source": "pipedrive",
        "deal_id": "pipedrive-deal-8",
        "amount": 100,
        "currency": "EUR",
        "owner": "12415231",
    }


def test_a_won_deal_is_won_at_its_won_time() -> None:
    (event,) = mapped(fixture("deal-won")).events
    assert event["event_id"] == "pipedrive:0b6a4b0e-3f55-4c1f-9a57-6c2f8d1e7a01:deal.won"
    assert event["occurred_at"] == "2022-11-25T10:02:03Z"
    assert (event["deal_id"], event["amount"], event["currency"], event["owner"]) == (
        "pipedrive-deal-8",
        100,
        "EUR",
        "12415231",
    )
    assert event["customer_id"] == mapped(fixture("create-deal")).events[0]["customer_id"]


def test_a_lost_deal_carries_its_lost_reason_and_lost_time() -> None:
    (event,) = mapped(fixture("deal-lost")).events
    assert event["reason"] == "Went with a competitor"
    assert event["occurred_at"] == "2022-11-25T11:30:00Z"
    assert event["deal_id"] == "pipedrive-deal-8"


def test_a_created_lead() -> None:
    (event,) = mapped(fixture("create-lead")).events
    assert event == {
        "event_id": "pipedrive:b18fa830-6c0d-11ed-9826-a53d0eb706a5:lead.created",
        "type": "lead.created",
        "customer_id": "pipedrive-org-2",
        "occurred_at": "2022-11-24T15:35:58.675000Z",
        "schema_version": 1,
        "source": "pipedrive",
        "lead_id": "pipedrive-lead-b1810230-6c0d-11ed-9826-a53d0eb706a5",
        "channel": "other",
        "owner": "12415231",
    }


# -- the customer ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "organization", "person"),
    [
        ("create-deal", "pipedrive-org-1", "pipedrive-person-8"),
        ("create-lead", "pipedrive-org-2", "pipedrive-person-11"),
        ("deal-won", "pipedrive-org-1", "pipedrive-person-8"),
        ("deal-lost", "pipedrive-org-1", "pipedrive-person-8"),
    ],
)
def test_the_customer_is_the_organization_or_the_person_as_configured(
    name: str, organization: str, person: str
) -> None:
    assert mapped(fixture(name), ORGANIZATION).events[0]["customer_id"] == organization
    assert mapped(fixture(name), PERSON).events[0]["customer_id"] == person


@pytest.mark.parametrize(("name", "org_field"), [("create-deal", "org_id"), ("create-lead", "organization_id")])
def test_without_the_chosen_link_the_other_one_is_the_customer(name: str, org_field: str) -> None:
    no_org = fixture(name)
    no_org["data"][org_field] = None
    assert mapped(no_org, ORGANIZATION).events[0]["customer_id"].startswith("pipedrive-person-")
    no_person = fixture(name)
    no_person["data"]["person_id"] = None
    assert mapped(no_person, PERSON).events[0]["customer_id"].startswith("pipedrive-org-")
    neither = fixture(name)
    neither["data"][org_field] = neither["data"]["person_id"] = None
    with pytest.raises(UnmappablePayload, match="neither an organization nor a person"):
        pipedrive.map_payload(neither, ORGANIZATION)


def test_long_ids_are_hashed_within_the_contract_lengths_and_stay_deterministic() -> None:
    payload = fixture("create-deal")
    payload["meta"]["id"] = "e" * 300
    payload["data"]["org_id"] = "o" * 100
    payload["data"]["id"] = "d" * 200
    first, second = mapped(payload).events[0], mapped(copy.deepcopy(payload)).events[0]
    assert first == second
    assert len(first["event_id"]) <= 128 and first["event_id"].startswith("pipedrive:")
    assert len(first["customer_id"]) <= 64 and first["customer_id"].startswith("pipedrive-org-")
    assert len(first["deal_id"]) <= 128 and first["deal_id"].startswith("pipedrive-deal-")


# -- event ids: a retry is a duplicate ------------------------------------------------------------------


def test_a_retried_delivery_has_the_same_event_ids_and_another_event_other_ones() -> None:
    original = fixture("deal-won")
    retry = fixture("deal-won")
    retry["meta"]["attempt"] = 3
    retry["meta"]["correlation_id"] = "00000000-0000-0000-0000-000000000000"
    assert mapped(retry).events == mapped(original).events
    other = fixture("deal-won")
    other["meta"]["id"] = "another-event"
    assert mapped(other).events[0]["event_id"] != mapped(original).events[0]["event_id"]


def test_without_meta_id_there_is_no_stable_event_id() -> None:
    payload = fixture("create-deal")
    del payload["meta"]["id"]
    with pytest.raises(UnmappablePayload, match=r"meta\.id"):
        pipedrive.map_payload(payload, ORGANIZATION)


# -- deals ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "closing"), [("won", "deal.won"), ("lost", "deal.lost")])
def test_a_deal_created_already_closed_is_opened_and_closed_under_distinct_ids(status: str, closing: str) -> None:
    payload = fixture("create-deal")
    payload["data"].update(status=status, won_time="2022-11-24T13:19:00Z", lost_time="2022-11-24T13:19:00Z")
    opened, closed = mapped(payload).events
    assert (opened["type"], closed["type"]) == ("deal.opened", closing)
    assert opened["event_id"] != closed["event_id"]
    assert opened["deal_id"] == closed["deal_id"]


def test_a_deal_reopened_is_not_followed() -> None:
    payload = fixture("deal-won")
    payload["data"]["status"] = "open"
    payload["previous"] = {"status": "won"}
    assert mapped(payload).ignored == "change.deal to status 'open' is not followed"


def test_without_won_time_the_event_time_is_meta_timestamp() -> None:
    payload = fixture("deal-won")
    payload["data"]["won_time"] = None
    assert mapped(payload).events[0]["occurred_at"] == "2022-11-25T10:02:03.512000Z"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("2022-11-24 15:11:55", "2022-11-24T15:11:55Z"), ("2022-11-24T17:11:55+02:00", "2022-11-24T15:11:55Z")],
)
def test_times_without_zone_are_utc_and_offsets_are_converted(value: str, expected: str) -> None:
    payload = fixture("create-deal")
    payload["data"]["add_time"] = value
    assert mapped(payload).events[0]["occurred_at"] == expected


def test_an_epoch_meta_timestamp_is_read() -> None:
    payload = fixture("create-deal")
    payload["data"]["add_time"] = None
    payload["meta"]["timestamp"] = 1669304542
    assert mapped(payload).events[0]["occurred_at"] == "2022-11-24T15:42:22Z"


@pytest.mark.parametrize("value", ["yesterday", [], True, 10**20])
def test_a_time_that_is_no_time_is_unmappable(value: Any) -> None:
    payload = fixture("create-deal")
    payload["data"]["add_time"] = value
    with pytest.raises(UnmappablePayload, match="add_time is not a time"):
        pipedrive.map_payload(payload, ORGANIZATION)


def test_no_time_at_all_is_unmappable() -> None:
    payload = fixture("create-deal")
    payload["data"]["add_time"] = None
    del payload["meta"]["timestamp"]
    with pytest.raises(UnmappablePayload, match=r"neither add_time nor meta\.timestamp"):
        pipedrive.map_payload(payload, ORGANIZATION)


def test_a_deal_without_value_counts_at_zero() -> None:
    payload = fixture("create-deal")
    payload["data"]["value"] = None
    assert mapped(payload).events[0]["amount"] == 0


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("value", "100", "value is not a number"),
        ("value", True, "value is not a number"),
        ("currency", None, "no currency"),
        ("owner_id", None, "no owner_id"),
        ("id", None, "the deal has no id"),
    ],
)
def test_a_deal_lacking_what_the_contract_needs_is_unmappable(field: str, value: Any, reason: str) -> None:
    payload = fixture("create-deal")
    payload["data"][field] = value
    with pytest.raises(UnmappablePayload, match=reason):
        pipedrive.map_payload(payload, ORGANIZATION)


def test_a_negative_value_is_passed_for_the_contract_to_refuse() -> None:
    payload = fixture("create-deal")
    payload["data"]["value"] = -5
    (event,) = pipedrive.map_payload(payload, ORGANIZATION).events
    assert event["amount"] == -5  # the publisher refuses it: a dead letter with the reason, nothing lost


def test_a_long_lost_reason_is_cut_to_the_contract_limit_and_an_empty_one_left_out() -> None:
    payload = fixture("deal-lost")
    payload["data"]["lost_reason"] = "x" * 5000
    assert len(mapped(payload).events[0]["reason"]) == 1024
    payload["data"]["lost_reason"] = ""
    assert "reason" not in mapped(payload).events[0]


# -- leads --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source_name", "origin", "channel"),
    [
        ("Web forms", "WebForms", "web"),
        ("Leadbooster", None, "web"),
        ("Live chat", None, "web"),
        ("Website visitors", None, "web"),
        (None, "Prospector", "outbound"),
        ("Prospector", None, "outbound"),
        ("Manually created", "ManuallyCreated", "other"),
        ("API", "API", "other"),
        ("Import", "Import", "other"),
        ("Something new", None, "other"),
        (None, None, "other"),
    ],
)
def test_the_lead_channel_comes_from_its_source(source_name: str | None, origin: str | None, channel: str) -> None:
    payload = fixture("create-lead")
    payload["data"].update(source_name=source_name, origin=origin, channel=7)
    assert mapped(payload).events[0]["channel"] == channel


def test_a_lead_without_owner_leaves_the_optional_owner_out() -> None:
    payload = fixture("create-lead")
    payload["data"]["owner_id"] = None
    assert "owner" not in mapped(payload).events[0]


def test_a_lead_without_id_is_unmappable() -> None:
    payload = fixture("create-lead")
    payload["data"]["id"] = ""
    with pytest.raises(UnmappablePayload, match="the lead has no id"):
        pipedrive.map_payload(payload, ORGANIZATION)


# -- what is not a webhooks v2 notification -------------------------------------------------------------

V1_NOTIFICATION = {  # the v1 format of Pipedrive's migration guide, with numbers for its placeholders
    "v": 1,
    "matches_filters": {"current": [], "previous": []},
    "meta": {"v": 1, "action": "added", "object": "deal", "id": 8, "company_id": 1, "timestamp": 1523440213},
    "retry": 0,
    "current": {"id": 8},
    "previous": None,
    "event": "added.deal",
}


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ([], "is a JSON object"),
        ("deal", "is a JSON object"),
        ({"data": {}}, "no meta object"),
        ({"meta": []}, "no meta object"),
        (V1_NOTIFICATION, "webhooks v1"),
        ({"meta": {"version": "1.0", "action": "create", "entity": "deal"}}, "only 2.0 is mapped"),
        ({"meta": {"action": 1, "entity": "deal"}}, "must be strings"),
        ({"meta": {"action": "create", "entity": "deal", "id": "x"}, "data": None}, "no data object"),
    ],
)
def test_what_is_no_webhooks_v2_notification_is_unmappable(payload: Any, reason: str) -> None:
    with pytest.raises(UnmappablePayload, match=reason):
        pipedrive.map_payload(payload, ORGANIZATION)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from(["create-deal", "deal-won", "deal-lost", "create-lead"]),
    part=st.sampled_from(["meta", "data", "previous"]),
    field=st.sampled_from(
        [
            *("id", "status", "value", "currency", "owner_id", "org_id", "organization_id", "person_id", "add_time"),
            *("won_time", "lost_time", "lost_reason", "timestamp", "action", "entity", "version", "source_name"),
        ]
    ),
    value=JSON,
    options=st.sampled_from([ORGANIZATION, PERSON]),
)
def test_any_field_of_any_value_maps_or_is_unmappable_never_another_error(
    name: str, part: str, field: str, value: Any, options: MappingOptions
) -> None:
    payload = fixture(name)
    if not isinstance(payload.get(part), dict):
        payload[part] = {}
    payload[part][field] = value
    try:
        result = pipedrive.map_payload(payload, options)
    except UnmappablePayload:
        return
    for event in result.events:
        orjson.dumps(event)  # what the publisher sends; the contract may still refuse it (a dead letter)


# -- HTTP Basic ----------------------------------------------------------------------------------------------


def test_the_right_credentials_pass() -> None:
    pipedrive.authenticate(b"{}", basic(b"pipedrive", b"s3cret:with:colons"), "pipedrive", "s3cret:with:colons", 0.0)
    lower = {"authorization": basic(b"u", b"p")["Authorization"].replace("Basic", "basic")}
    pipedrive.authenticate(b"{}", lower, "u", "p", 0.0)


def test_non_ascii_credentials_pass_when_right() -> None:
    pipedrive.authenticate(b"", basic("jürgen".encode(), "pässwörd".encode()), "jürgen", "pässwörd", 0.0)


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "no HTTP Basic credentials"),
        ({"Authorization": "Bearer abc"}, "not HTTP Basic"),
        ({"Authorization": "Basic"}, "not HTTP Basic"),
        ({"Authorization": "Basic %%%not-base64"}, "malformed"),
        ({"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()}, "malformed"),
        (basic(b"pipedrive", b"wrong"), "wrong HTTP Basic credentials"),
        (basic(b"wrong", b"s3cret"), "wrong HTTP Basic credentials"),
        (basic(b"pipedrive", b"s3cret-and-more"), "wrong HTTP Basic credentials"),
        (basic(b"pipedrive", b""), "wrong HTTP Basic credentials"),
        (basic(b"\xff\xfe", b"\xff"), "wrong HTTP Basic credentials"),
    ],
)
def test_missing_or_wrong_credentials_are_401_without_the_secret(headers: dict[str, str], reason: str) -> None:
    with pytest.raises(RefusedRequest, match=reason) as refused:
        pipedrive.authenticate(b"{}", headers, "pipedrive", "s3cret", 0.0)
    assert refused.value.status == 401
    assert "s3cret" not in refused.value.reason and "pipedrive:" not in refused.value.reason


@pytest.mark.parametrize(("username", "password"), [("", ""), ("pipedrive", ""), ("", "s3cret")])
def test_without_configured_credentials_the_source_is_disabled_not_open(username: str, password: str) -> None:
    with pytest.raises(RefusedRequest) as refused:
        pipedrive.authenticate(b"{}", basic(username.encode(), password.encode()), username, password, 0.0)
    assert refused.value.status == 404
