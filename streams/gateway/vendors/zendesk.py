"""Zendesk: event-subscribed ticket webhooks (``zen:event-type:ticket.*``) and the trigger-based bodies
this product defines (``lifecycle_trigger``), mapped to ticket and CSAT events; requests are signed
with the webhook's signing secret. The mapping and its defaults: docs/gateway/zendesk.md."""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from streams.contract.timestamps import format_timestamp, parse_timestamp
from streams.domain.errors import RefusedRequest, UnmappablePayload
from streams.gateway.mapping import Mapped, MappingOptions, contract_event, header

SOURCE = "zendesk"

SIGNATURE_HEADER = "X-Zendesk-Webhook-Signature"
TIMESTAMP_HEADER = "X-Zendesk-Webhook-Signature-Timestamp"
# Zendesk signs requests sent by "Test webhook" (before the webhook exists) with this fixed secret
TEST_SIGNING_SECRET = "dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ=="

EVENT_PREFIX = "zen:event-type:"
TRIGGER_FIELD = "lifecycle_trigger"

# detail.via.channel (Zendesk's via types) -> the contract's channel; any other (web_service, rule, ...) is "web"
CHANNELS: dict[str, str] = {
    **dict.fromkeys(["email", "mail"], "email"),
    **dict.fromkeys(
        ["web", "web_form", "web_widget", "help_center", "dropbox", "topic", "mobile", "mobile_sdk", "iphone"], "web"
    ),
    **dict.fromkeys(
        [
            "chat",
            "chat_transcript",
            "messaging",
            "native_messaging",
            "sunshine_conversations",
            "text_message",
            "sms",
            "facebook",
            "facebook_message",
            "facebook_post",
            "twitter",
            "twitter_dm",
            "instagram_dm",
            "whatsapp",
            "line",
            "wechat",
            "telegram",
            "viber",
            "apple_business_chat",
            "google_rcs",
            "kakaotalk",
        ],
        "chat",
    ),
    **dict.fromkeys(["voice", "phone", "phone_call_inbound", "phone_call_outbound", "voicemail", "talk"], "phone"),
}
DEFAULT_CHANNEL = "web"
PRIORITIES = frozenset({"low", "normal", "high", "urgent"})
DEFAULT_PRIORITY = "normal"
ACTIVE_STATUSES = frozenset({"new", "open", "pending", "hold"})

# what the event subscription's "solved" cannot say: the defaults that make ticket.resolved valid
DEFAULT_HANDLING_SECONDS = 0
DEFAULT_CONTACTS = 1
MAX_HANDLING_SECONDS = 31_536_000
MAX_CONTACTS = 10_000

GOOD_SCORE = 5
BAD_SCORE = 1

_DIGITS = re.compile(r"[0-9]{1,30}")  # at most 30: "zendesk-user-<id>" stays within the contract's 64 characters
_NUMBER = re.compile(r"[0-9]{1,12}(\.[0-9]{1,9})?")
_MAX_EVENT_ID = 128
_TRIGGER_KINDS = ("ticket.solved", "ticket.reopened", "satisfaction.rated")


def expected_signature(body: bytes, timestamp: str, secret: str) -> str:
    """Zendesk's signature: base64(HMAC-SHA256(key=secret, timestamp + body)); the secret is used as
    its text, not base64-decoded (the test secret too)."""
    digest = hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def signing_secrets(secret: str) -> tuple[str, ...]:
    """The secrets in ``LIFECYCLE_GATEWAY_ZENDESK_SECRET``, comma-separated: Zendesk gives each webhook its
    own, and the event-subscribed webhook and the trigger-connected one must be two webhooks."""
    return tuple(part.strip() for part in secret.split(",") if part.strip())


def authenticate(body: bytes, headers: Mapping[str, str], secret: str, now: float, tolerance: float = 300.0) -> None:
    """Refuse (401) a request not signed with one of the secrets in ``secret``, or signed at a time more
    than ``tolerance`` seconds from ``now`` (the timestamp is signed, so a replay can only be refused by
    its age; within the window a replay is a duplicate event id downstream)."""
    secrets = signing_secrets(secret)
    if not secrets:
        raise RefusedRequest(404, "the zendesk source is disabled: no signing secret is set")
    signature = header(headers, SIGNATURE_HEADER)
    timestamp = header(headers, TIMESTAMP_HEADER)
    if not signature or not timestamp:
        raise RefusedRequest(401, f"unsigned: {SIGNATURE_HEADER} and {TIMESTAMP_HEADER} are required")
    try:
        signed_at = datetime.fromisoformat(timestamp.strip().upper())
    except ValueError:
        signed_at = None
    if signed_at is None or signed_at.tzinfo is None:
        raise RefusedRequest(401, f"{TIMESTAMP_HEADER} is not an ISO 8601 time with a zone")
    age = now - signed_at.timestamp()
    if not math.isfinite(age) or abs(age) > tolerance:
        raise RefusedRequest(401, f"{TIMESTAMP_HEADER} is outside the {tolerance:g} s replay window")
    given = signature.strip().encode("utf-8", "replace")
    matches = [hmac.compare_digest(expected_signature(body, timestamp, s).encode("ascii"), given) for s in secrets]
    if not any(matches):  # every secret compared, in constant time each: which one matched leaks nothing
        raise RefusedRequest(401, f"{SIGNATURE_HEADER} does not match the body")


def map_payload(payload: Any, options: MappingOptions) -> Mapped:
    """An event-subscribed webhook (``type`` ``zen:event-type:...``) or one of this product's trigger
    bodies (``lifecycle_trigger``) -> contract events."""
    if not isinstance(payload, dict):
        raise UnmappablePayload(f"a Zendesk webhook body is a JSON object, not {type(payload).__name__}")
    if TRIGGER_FIELD in payload:
        return _map_trigger(payload, options)
    event_type = payload.get("type")
    if not isinstance(event_type, str) or not event_type.startswith(EVENT_PREFIX):
        raise UnmappablePayload(f"neither a Zendesk event ('type' {EVENT_PREFIX}...) nor a {TRIGGER_FIELD!r} body")
    handler = _EVENT_HANDLERS.get(event_type.removeprefix(EVENT_PREFIX))
    if handler is None:
        return Mapped(ignored=f"{event_type[:100]} is not followed")
    return handler(payload, options)


# -- event-subscribed webhooks --------------------------------------------------------------------------


def _map_created(payload: dict[str, Any], options: MappingOptions) -> Mapped:
    detail = _detail(payload)
    via = detail.get("via")
    raw_channel = via.get("channel") if isinstance(via, dict) else None  # none at all: the catch-all too
    channel = CHANNELS.get(raw_channel.strip().lower(), DEFAULT_CHANNEL) if isinstance(raw_channel, str) else None
    priority = detail.get("priority")
    if priority is None or priority == "":
        priority = DEFAULT_PRIORITY
    elif not isinstance(priority, str) or priority.strip().lower() not in PRIORITIES:
        raise UnmappablePayload(f"detail.priority {str(priority)[:40]!r} is none of {sorted(PRIORITIES)}")
    event = _event(
        "ticket.opened",
        payload,
        detail,
        options,
        channel=channel or DEFAULT_CHANNEL,
        priority=priority.strip().lower(),
    )
    return Mapped(events=(event,))


def _map_status_changed(payload: dict[str, Any], options: MappingOptions) -> Mapped:
    detail = _detail(payload)
    change = payload.get("event")
    current = _status(change.get("current") if isinstance(change, dict) else None) or _status(detail.get("status"))
    previous = _status(change.get("previous")) if isinstance(change, dict) else None
    if current is None:
        raise UnmappablePayload("event.current (the new status) is missing")
    if current == "solved" and previous != "solved":
        event = _event(
            "ticket.resolved",
            payload,
            detail,
            options,
            handling_seconds=DEFAULT_HANDLING_SECONDS,
            contacts=DEFAULT_CONTACTS,
        )
        return Mapped(events=(event,))
    if previous == "solved" and current in ACTIVE_STATUSES:
        return Mapped(events=(_event("ticket.reopened", payload, detail, options),))
    return Mapped(
        ignored=f"ticket.status_changed from {(previous or 'unknown')[:40]} to {current[:40]} is not followed"
    )


def _map_comment_added(payload: dict[str, Any], options: MappingOptions) -> Mapped:
    detail = _detail(payload)
    change = payload.get("event")
    comment = change.get("comment") if isinstance(change, dict) else None
    author = comment.get("author") if isinstance(comment, dict) else None
    if not isinstance(comment, dict) or not isinstance(author, dict):
        raise UnmappablePayload("event.comment.author is missing: who commented cannot be told")
    is_public, is_staff = comment.get("is_public"), author.get("is_staff")
    if not isinstance(is_public, bool) or not isinstance(is_staff, bool):
        raise UnmappablePayload("event.comment.is_public and event.comment.author.is_staff must be booleans")
    if not is_public:
        return Mapped(ignored="ticket.comment_added: a private comment is not a response")
    if not is_staff:
        return Mapped(ignored="ticket.comment_added: an end user's comment is not a response")
    created_at, updated_at = detail.get("created_at"), detail.get("updated_at")
    if isinstance(created_at, str) and created_at and created_at == updated_at:
        # the ticket's opening comment (an agent creating a ticket, an auto-reply in the same update)
        return Mapped(ignored="ticket.comment_added: the comment that opened the ticket is not a response")
    return Mapped(events=(_event("ticket.responded", payload, detail, options),))


_EVENT_HANDLERS = {
    "ticket.created": _map_created,
    "ticket.status_changed": _map_status_changed,
    "ticket.comment_added": _map_comment_added,
}


def _detail(payload: dict[str, Any]) -> dict[str, Any]:
    detail = payload.get("detail")
    if not isinstance(detail, dict):
        raise UnmappablePayload("detail (the ticket) is missing")
    return detail


def _event(
    event_type: str, payload: dict[str, Any], detail: dict[str, Any], options: MappingOptions, **fields: Any
) -> dict[str, Any]:
    zendesk_id = payload.get("id")
    if not isinstance(zendesk_id, str) or not zendesk_id.strip():
        raise UnmappablePayload("id (Zendesk's event id) is missing")
    ticket_id = _zendesk_id(detail.get("id"), "detail.id")
    if ticket_id is None:
        raise UnmappablePayload("detail.id (the ticket id) is missing")
    when = payload.get("time") if payload.get("time") is not None else detail.get("updated_at")
    return contract_event(
        event_type,
        _bounded_id(f"{SOURCE}:{zendesk_id.strip()}"),
        _customer_id(options, detail.get("organization_id"), detail.get("requester_id"), "detail."),
        _moment(when, "time"),
        SOURCE,
        ticket_id=f"{SOURCE}-ticket-{ticket_id}",
        **fields,
    )


def _status(value: Any) -> str | None:
    return (value.strip().lower() or None) if isinstance(value, str) else None


# -- trigger bodies (this product's templates) ---------------------------------------------------------


def _map_trigger(payload: dict[str, Any], options: MappingOptions) -> Mapped:
    kind = payload.get(TRIGGER_FIELD)
    if kind not in _TRIGGER_KINDS:
        raise UnmappablePayload(f"{TRIGGER_FIELD} {str(kind)[:40]!r} is none of {', '.join(_TRIGGER_KINDS)}")
    ticket_id = _zendesk_id(payload.get("ticket_id"), "ticket_id")
    if ticket_id is None:
        raise UnmappablePayload("ticket_id is missing (the template's {{ticket.id}})")
    occurred_at = _moment(payload.get("updated_at"), "updated_at")
    customer_id = _customer_id(options, payload.get("organization_id"), payload.get("requester_id"), "")
    when = format_timestamp(occurred_at)
    ticket = f"{SOURCE}-ticket-{ticket_id}"
    if kind == "ticket.solved":
        handling = _count(payload.get("handling_seconds"), "handling_seconds", DEFAULT_HANDLING_SECONDS)
        contacts = _count(payload.get("contacts"), "contacts", DEFAULT_CONTACTS)
        if handling > MAX_HANDLING_SECONDS:
            raise UnmappablePayload(f"handling_seconds {handling:g} is more than a year")
        if contacts != int(contacts) or contacts > MAX_CONTACTS:
            raise UnmappablePayload(f"contacts {contacts:g} is not a whole number up to {MAX_CONTACTS}")
        event = contract_event(
            "ticket.resolved",
            _bounded_id(f"{SOURCE}:solved:{ticket_id}:{when}"),
            customer_id,
            occurred_at,
            SOURCE,
            ticket_id=ticket,
            handling_seconds=int(handling) if handling == int(handling) else handling,
            contacts=max(int(contacts), 1),  # solved without a public reply: the request itself, one contact
        )
        return Mapped(events=(event,))
    if kind == "ticket.reopened":
        event_id = _bounded_id(f"{SOURCE}:reopened:{ticket_id}:{when}")
        event = contract_event("ticket.reopened", event_id, customer_id, occurred_at, SOURCE, ticket_id=ticket)
        return Mapped(events=(event,))
    score = _score(payload.get("rating"))  # satisfaction.rated
    if score is None:
        return Mapped(ignored="satisfaction.rated without a rating (offered or unoffered) is not followed")
    event_id = _bounded_id(f"{SOURCE}:csat:{ticket_id}:{when}")
    event = contract_event("csat.submitted", event_id, customer_id, occurred_at, SOURCE, ticket_id=ticket, score=score)
    return Mapped(events=(event,))


def _count(value: Any, name: str, default: int) -> float:
    """A rendered placeholder: a number, or its text; blank (an empty field renders as nothing) is the default."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return default
    if isinstance(value, bool):
        raise UnmappablePayload(f"{name} must be a number, not a boolean")
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        number = float(value.strip())
    else:
        raise UnmappablePayload(f"{name} {str(value)[:40]!r} is not a non-negative number")
    if not math.isfinite(number) or number < 0:
        raise UnmappablePayload(f"{name} {str(value)[:40]!r} is not a non-negative number")
    return number


def _score(rating: Any) -> int | None:
    """good -> 5, bad -> 1 (Zendesk's CSAT is binary); a 1-5 number as it is; offered/unoffered/blank: no rating.
    ``{{satisfaction.current_rating}}`` renders a sentence ("Good, I'm satisfied"): its first word decides."""
    if isinstance(rating, int | float) and not isinstance(rating, bool):
        text = str(int(rating)) if float(rating).is_integer() else str(rating)
    elif isinstance(rating, str):
        text = rating.strip().lower()
    else:
        raise UnmappablePayload("rating is missing (the template's good/bad or {{satisfaction.current_rating}})")
    if text in ("", "offered", "unoffered"):
        return None
    if text.startswith("good"):
        return GOOD_SCORE
    if text.startswith("bad"):
        return BAD_SCORE
    if text in ("1", "2", "3", "4", "5"):
        return int(text)
    raise UnmappablePayload(f"rating {text[:40]!r} is neither good nor bad nor a score 1-5")


# -- shared ---------------------------------------------------------------------------------------------


def _zendesk_id(value: Any, name: str) -> str | None:
    """A Zendesk id (an integer, or its digits as text); None, blank or 0 is none."""
    if value is None:
        return None
    text = str(value).strip() if isinstance(value, int | str) and not isinstance(value, bool) else None
    if text is None or not (text == "" or _DIGITS.fullmatch(text)):
        raise UnmappablePayload(f"{name} {str(value)[:40]!r} is not a Zendesk id")
    return text.lstrip("0") or None  # 0 (Zendesk's "none" in user events) and blank: none


def _customer_id(options: MappingOptions, organization: Any, requester: Any, prefix: str) -> str:
    """The ticket's organization (its requester when it has none), or its requester."""
    if options.zendesk_customer == "organization":
        organization_id = _zendesk_id(organization, f"{prefix}organization_id")
        if organization_id is not None:
            return f"{SOURCE}-org-{organization_id}"
    requester_id = _zendesk_id(requester, f"{prefix}requester_id")
    if requester_id is None:
        raise UnmappablePayload(f"{prefix}requester_id is missing: the ticket's customer cannot be told")
    return f"{SOURCE}-user-{requester_id}"


def _moment(value: Any, name: str) -> datetime:
    if not isinstance(value, str) or not value.strip():
        raise UnmappablePayload(f"{name} (when it happened) is missing")
    try:
        return parse_timestamp(value.strip()).replace(tzinfo=UTC)
    except ValueError:
        raise UnmappablePayload(f"{name} {value[:40]!r} is not an ISO 8601 time with a zone") from None


def _bounded_id(event_id: str) -> str:
    if len(event_id) <= _MAX_EVENT_ID:
        return event_id
    return f"{SOURCE}:{hashlib.blake2b(event_id.encode(), digest_size=32).hexdigest()}"
