"""Pipedrive webhooks v2: leads and deals to contract events, HTTP Basic authentication.

What maps (docs/gateway/pipedrive.md has the table): ``create.lead`` -> lead.created, ``create.deal`` ->
deal.opened (plus deal.won / deal.lost for a deal created already closed), ``change.deal`` whose status
became ``won`` / ``lost`` -> deal.won / deal.lost. Everything else (persons, organizations, activities,
deletions, other changes) is ignored: it states no lifecycle fact.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from streams.domain.errors import RefusedRequest, UnmappablePayload
from streams.gateway.mapping import Mapped, MappingOptions, bounded_id, contract_event, header

SOURCE = "pipedrive"

MAX_EVENT_ID = 128
MAX_ITEM_ID = 128  # lead_id, deal_id
MAX_CUSTOMER_ID = 64
MAX_REASON = 1024

# Pipedrive's fixed lead sources (GET /v1/leadSources; ``source_name``) and the ``origin`` values its
# leads carry, normalised to lower-case letters, -> the contract's channel. Unknown ones are "other".
_LEAD_CHANNELS = {
    "webforms": "web",
    "leadbooster": "web",  # Pipedrive files its chatbot's leads under LeadBooster
    "chatbot": "web",
    "livechat": "web",
    "websitevisitors": "web",
    "webvisitors": "web",
    "prospector": "outbound",  # Pipedrive's B2B prospect database: outbound prospecting
}
_NOT_LETTERS = re.compile(r"[^a-z]")


def map_payload(payload: Any, options: MappingOptions) -> Mapped:
    """The contract events of one Pipedrive webhooks v2 notification (``{meta, data, previous}``)."""
    if not isinstance(payload, dict):
        raise UnmappablePayload("a Pipedrive webhook is a JSON object")
    meta = payload.get("meta")
    if not isinstance(meta, dict):
        raise UnmappablePayload("no meta object: not a Pipedrive webhooks v2 notification")
    if "object" in meta and "entity" not in meta:
        raise UnmappablePayload("a Pipedrive webhooks v1 notification: create the webhook with version 2.0")
    version = meta.get("version")
    if version is not None and not str(version).startswith("2"):
        raise UnmappablePayload(f"Pipedrive webhooks version {str(version)[:20]!r}: only 2.0 is mapped")
    action, entity = meta.get("action"), meta.get("entity")
    if not isinstance(action, str) or not isinstance(entity, str):
        raise UnmappablePayload("meta.action and meta.entity must be strings")
    kind = f"{action}.{entity}"[:100]
    if kind == "create.lead":
        return Mapped(events=(_lead_created(meta, _data(payload), options),))
    if kind == "create.deal":
        return Mapped(events=_deal_created(meta, _data(payload), options))
    if kind == "change.deal":
        return _deal_changed(meta, _data(payload), payload.get("previous"), options)
    return Mapped(ignored=f"{kind} is not followed")


def authenticate(body: bytes, headers: Mapping[str, str], username: str, password: str, now: float) -> None:
    """HTTP Basic, the one authentication Pipedrive's webhooks offer (``http_auth_user`` /
    ``http_auth_password`` of the webhook). Both parts compared in constant time, both always compared,
    so the time says nothing about which one was wrong. No credentials configured: disabled (404)."""
    if not username or not password:
        raise RefusedRequest(404, "the pipedrive source is disabled: no credentials are set")
    value = header(headers, "authorization")
    if value is None:
        raise RefusedRequest(401, "no HTTP Basic credentials")
    scheme, _, encoded = value.strip().partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        raise RefusedRequest(401, "the Authorization header is not HTTP Basic")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise RefusedRequest(401, "malformed HTTP Basic credentials") from None
    given_user, colon, given_password = decoded.partition(b":")
    if not colon:
        raise RefusedRequest(401, "malformed HTTP Basic credentials")
    user_ok = hmac.compare_digest(given_user, username.encode())
    password_ok = hmac.compare_digest(given_password, password.encode())
    if not (user_ok & password_ok):
        raise RefusedRequest(401, "wrong HTTP Basic credentials")


def _lead_created(meta: dict[str, Any], data: dict[str, Any], options: MappingOptions) -> dict[str, Any]:
    lead_id = _identifier(data.get("id"))
    if lead_id is None:
        raise UnmappablePayload("the lead has no id")
    org = data.get("organization_id", data.get("org_id"))
    return contract_event(
        "lead.created",
        _event_id(meta, "lead.created"),
        _customer(org, data.get("person_id"), options, "lead"),
        _when(data.get("add_time"), meta, "add_time"),
        SOURCE,
        lead_id=bounded_id("pipedrive-lead-", lead_id, MAX_ITEM_ID),
        channel=_lead_channel(data),
        owner=_identifier(data.get("owner_id")),
    )


def _deal_created(meta: dict[str, Any], data: dict[str, Any], options: MappingOptions) -> tuple[dict[str, Any], ...]:
    """deal.opened; a deal created already won or lost (an import, the API) also closes at once."""
    opened = _deal_event("deal.opened", meta, data, options, _when(data.get("add_time"), meta, "add_time"))
    status = data.get("status")
    if status == "won":
        return opened, _won(meta, data, options)
    if status == "lost":
        return opened, _lost(meta, data, options)
    return (opened,)


def _deal_changed(meta: dict[str, Any], data: dict[str, Any], previous: Any, options: MappingOptions) -> Mapped:
    """Only a change of status is a lifecycle fact: ``previous`` holds just the fields that changed."""
    status = data.get("status")
    if not isinstance(previous, dict) or "status" not in previous or previous["status"] == status:
        return Mapped(ignored="change.deal without a change of status is not followed")
    if status == "won":
        return Mapped(events=(_won(meta, data, options),))
    if status == "lost":
        return Mapped(events=(_lost(meta, data, options),))
    return Mapped(ignored=f"change.deal to status {str(status)[:20]!r} is not followed")


def _won(meta: dict[str, Any], data: dict[str, Any], options: MappingOptions) -> dict[str, Any]:
    return _deal_event("deal.won", meta, data, options, _when(data.get("won_time"), meta, "won_time"))


def _lost(meta: dict[str, Any], data: dict[str, Any], options: MappingOptions) -> dict[str, Any]:
    reason = data.get("lost_reason")
    return contract_event(
        "deal.lost",
        _event_id(meta, "deal.lost"),
        _customer(data.get("org_id"), data.get("person_id"), options, "deal"),
        _when(data.get("lost_time"), meta, "lost_time"),
        SOURCE,
        deal_id=_deal_id(data),
        reason=reason[:MAX_REASON] if isinstance(reason, str) and reason else None,
    )


def _deal_event(
    event_type: str, meta: dict[str, Any], data: dict[str, Any], options: MappingOptions, occurred_at: datetime
) -> dict[str, Any]:
    currency = data.get("currency")
    if not isinstance(currency, str) or not currency:
        raise UnmappablePayload("the deal has no currency")
    owner = _identifier(data.get("owner_id"))
    if owner is None:
        raise UnmappablePayload("the deal has no owner_id")
    return contract_event(
        event_type,
        _event_id(meta, event_type),
        _customer(data.get("org_id"), data.get("person_id"), options, "deal"),
        occurred_at,
        SOURCE,
        deal_id=_deal_id(data),
        amount=_amount(data.get("value")),
        currency=currency,
        owner=owner,
    )


def _data(payload: dict[str, Any]) -> dict[str, Any]:
    data = payload.get("data")
    if not isinstance(data, dict):
        raise UnmappablePayload("no data object: the notification carries no current state")
    return data


def _deal_id(data: dict[str, Any]) -> str:
    deal_id = _identifier(data.get("id"))
    if deal_id is None:
        raise UnmappablePayload("the deal has no id")
    return bounded_id("pipedrive-deal-", deal_id, MAX_ITEM_ID)


def _amount(value: Any) -> float | int:
    """Pipedrive keeps a deal without a value at 0; a null value counts as that 0 (docs say what it costs)."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UnmappablePayload("the deal's value is not a number")
    return value


def _customer(org: Any, person: Any, options: MappingOptions, what: str) -> str:
    """``pipedrive-org-<id>`` or ``pipedrive-person-<id>`` as configured; the other one when the chosen
    one is not linked (Pipedrive asks every deal and lead for a person or an organization)."""
    candidates = [("org", _identifier(org)), ("person", _identifier(person))]
    if options.pipedrive_customer == "person":
        candidates.reverse()
    for kind, value in candidates:
        if value is not None:
            return bounded_id(f"pipedrive-{kind}-", value, MAX_CUSTOMER_ID)
    raise UnmappablePayload(f"the {what} is linked to neither an organization nor a person: no customer")


def _lead_channel(data: dict[str, Any]) -> str:
    """The lead's fixed source (``source_name``, else ``origin``) when it names one; ``channel`` is an id
    of the company's own options, which says nothing without a look-up: "other"."""
    for name in (data.get("source_name"), data.get("origin")):
        if isinstance(name, str) and name:
            return _LEAD_CHANNELS.get(_NOT_LETTERS.sub("", name.lower()), "other")
    return "other"


def _event_id(meta: dict[str, Any], event_type: str) -> str:
    """``pipedrive:<meta.id>:<type>``: ``meta.id`` is the id of the event the webhook reports, the same in
    every delivery attempt (``meta.attempt`` counts them), so a retry is a duplicate downstream."""
    event = _identifier(meta.get("id"))
    if event is None:
        raise UnmappablePayload("meta.id is missing: no stable event id")
    return bounded_id(f"{SOURCE}:", f"{event}:{event_type}", MAX_EVENT_ID)


def _when(value: Any, meta: dict[str, Any], field: str) -> datetime:
    """The object's own time of the fact if it has one, else when Pipedrive sent the event."""
    moment = _time(value, field)
    if moment is None:
        moment = _time(meta.get("timestamp"), "meta.timestamp")
    if moment is None:
        raise UnmappablePayload(f"neither {field} nor meta.timestamp is set")
    return moment


def _time(value: Any, field: str) -> datetime | None:
    """RFC 3339 (v2), ``YYYY-MM-DD HH:MM:SS`` in UTC (Pipedrive's API), or epoch seconds (``meta.timestamp``
    of some entities)."""
    if value is None or value == "":
        return None
    try:
        if isinstance(value, str):
            moment = datetime.fromisoformat(value.upper())
            return moment.astimezone(UTC) if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, UTC)
    except (ValueError, OverflowError, OSError):
        pass
    raise UnmappablePayload(f"{field} is not a time")


def _identifier(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None
