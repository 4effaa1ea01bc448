"""Stripe events: paid invoices, subscriptions created and ended, to contract events; ``Stripe-Signature``.

What maps (docs/gateway/stripe.md has the table and what each choice costs a metric):

- ``invoice.paid`` / ``invoice.payment_succeeded`` with money paid -> deal.won, one deal per invoice
  (the money fact), its kind from ``billing_reason``;
- ``customer.subscription.created`` -> deal.opened of the subscription's first invoice, so that the
  invoice's payment wins the very deal the subscription opened (one deal, not two); a trial opens none;
- ``customer.subscription.deleted`` -> customer.churned; deal.lost of the first invoice for a
  subscription whose first payment never completed (``incomplete_expired``); nothing for one that ended
  in its trial (nothing was won, so nothing is lost to churn).

Everything else is ignored. The mapping reads the event alone (no Stripe API call): what the event does
not say (a trial's end, the customer's other subscriptions) it cannot know, and the docs say so.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from streams.domain.errors import RefusedRequest, UnmappablePayload
from streams.gateway.mapping import Mapped, MappingOptions, bounded_id, contract_event, header

SOURCE = "stripe"
OWNER = "stripe"  # deal.won/opened's owner unless the object's metadata names one (METADATA_OWNER)

METADATA_CUSTOMER = "lifecycle_customer_id"  # set it in Stripe to share the CRM's customer ids
METADATA_OWNER = "lifecycle_owner"  # set it in Stripe to credit a sales rep instead of "stripe"

TOLERANCE_SECONDS = 300.0  # Stripe's libraries' default replay window
MAX_EVENT_ID = 128
MAX_DEAL_ID = 128
MAX_CUSTOMER_ID = 64
MAX_OWNER = 128
MAX_REASON = 256

PAID = frozenset({"invoice.paid", "invoice.payment_succeeded"})
SUBSCRIPTION_CREATED = "customer.subscription.created"
SUBSCRIPTION_DELETED = "customer.subscription.deleted"

# Stripe's amounts are integers in the currency's minor unit. Stripe's own list (docs.stripe.com/currencies,
# "Zero-decimal currencies" and "Three-decimal currencies"); every other currency has two decimals in the
# API, including the ones Stripe lists as special cases (HUF, TWD, ISK: two-decimal amounts in the API).
# Neither pycountry nor the standard library carries minor units, so the list is kept here.
ZERO_DECIMAL = frozenset(
    {"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF"}
)
THREE_DECIMAL = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})

# billing_reason -> deal kind. subscription_create is left to the contract's rule (the customer's first
# won deal is new_business, a later one expansion): a second subscription of a paying customer is not new
# business. Absent for manual, quote_accept and the rest: the same rule decides.
_KINDS = {
    "subscription_cycle": "renewal",
    "subscription_threshold": "renewal",  # a cycle's usage billed early
    "subscription_update": "expansion",  # an upgrade's proration
}


def map_payload(payload: Any, options: MappingOptions) -> Mapped:
    """The contract events of one Stripe event (``{id, type, created, data: {object}}``)."""
    if not isinstance(payload, dict) or payload.get("object", "event") != "event":
        raise UnmappablePayload("a Stripe webhook is an event object")
    event_type = payload.get("type")
    if not isinstance(event_type, str) or not event_type:
        raise UnmappablePayload("the event has no type")
    if event_type in PAID:
        return _invoice_paid(payload, _data_object(payload, "invoice"))
    if event_type == SUBSCRIPTION_CREATED:
        return _subscription_created(payload, _data_object(payload, "subscription"))
    if event_type == SUBSCRIPTION_DELETED:
        return _subscription_deleted(payload, _data_object(payload, "subscription"))
    return Mapped(ignored=f"{event_type[:100]} is not followed")


def authenticate(
    body: bytes, headers: Mapping[str, str], secret: str, now: float, tolerance: float = TOLERANCE_SECONDS
) -> None:
    """Stripe's scheme (docs.stripe.com/webhooks, "Verify signatures manually"): ``Stripe-Signature:
    t=<unix>,v1=<hex>[,v1=<hex>...]``, each v1 an HMAC-SHA256 of ``<t>.<body>`` with the endpoint's
    signing secret (several while a rolled secret's old one still signs); any v1 may match. ``t`` within
    ``tolerance`` of ``now`` either way, or a captured request could be replayed. v0 and unknown schemes
    are ignored, as Stripe's libraries do. No secret configured: disabled (404)."""
    if not secret:
        raise RefusedRequest(404, "the stripe source is disabled: no signing secret is set")
    value = header(headers, "stripe-signature")
    if value is None or not value.strip():
        raise RefusedRequest(401, "no Stripe-Signature header")
    timestamps: list[str] = []
    signatures: list[str] = []
    for item in value.split(","):
        if not item.strip():
            continue
        key, equals, text = item.strip().partition("=")
        if not equals:
            raise RefusedRequest(401, "malformed Stripe-Signature header")
        if key == "t":
            timestamps.append(text.strip())
        elif key == "v1":
            signatures.append(text.strip())
    if len(timestamps) != 1 or not timestamps[0].isascii() or not timestamps[0].isdigit() or len(timestamps[0]) > 15:
        raise RefusedRequest(401, "the Stripe-Signature header has no single unix timestamp t")
    if not signatures:
        raise RefusedRequest(401, "the Stripe-Signature header has no v1 signature")
    timestamp = timestamps[0]
    expected = signature(secret, timestamp.encode() + b"." + body).encode()
    # every candidate compared in constant time; none short-circuits on where the first difference is
    matched = False
    for candidate in signatures:
        matched |= hmac.compare_digest(expected, candidate.encode("utf-8", "replace"))
    if not matched:
        raise RefusedRequest(401, "no v1 signature matches the body")
    if abs(now - int(timestamp)) > tolerance:
        raise RefusedRequest(401, f"the signature's timestamp is outside the {tolerance:g} s tolerance")


def signature(secret: str, signed_payload: bytes) -> str:
    """Stripe's v1 signature of ``signed_payload`` (``<t>.<body>``): HMAC-SHA256 with the whole signing
    secret (``whsec_...``, prefix included) as the key, in lower-case hex."""
    return hmac.new(secret.encode(), signed_payload, hashlib.sha256).hexdigest()


def _invoice_paid(event: dict[str, Any], invoice: dict[str, Any]) -> Mapped:
    """deal.won: the invoice is the deal, its payment the win. An invoice paid with nothing (a trial's,
    one fully discounted or paid from credit) wins nothing and is ignored."""
    currency = _currency(invoice.get("currency"), "invoice")
    paid = invoice.get("amount_paid")
    if isinstance(paid, bool) or not isinstance(paid, int) or paid < 0:
        raise UnmappablePayload("the invoice's amount_paid is not a non-negative integer")
    if paid == 0:
        return Mapped(ignored=f"{event['type']} of an invoice paid with 0 is not followed (a trial's, say)")
    metadata = _invoice_metadata(invoice)
    reason = invoice.get("billing_reason")
    return Mapped(
        events=(
            contract_event(
                "deal.won",
                _event_id(event),
                _customer(invoice, metadata, "invoice"),
                _occurred_at(event),
                SOURCE,
                deal_id=_deal_id(invoice.get("id"), "the invoice has no id"),
                amount=_major_units(paid, currency),
                currency=currency,
                owner=_owner(metadata),
                kind=_KINDS.get(reason) if isinstance(reason, str) else None,
            ),
        )
    )


def _subscription_created(event: dict[str, Any], subscription: dict[str, Any]) -> Mapped:
    """deal.opened with the deal id of the subscription's first invoice (``latest_invoice`` at creation),
    whose payment is the deal.won: opened and won are one deal. Its amount is the items' list price,
    a placeholder the won invoice's ``amount_paid`` replaces (a won deal's terms are final)."""
    if subscription.get("status") == "trialing":
        return Mapped(ignored=f"{SUBSCRIPTION_CREATED} of a trial is not followed: its first paid invoice is")
    first_invoice = _id_of(subscription.get("latest_invoice"))
    if first_invoice is None:
        return Mapped(ignored=f"{SUBSCRIPTION_CREATED} without a first invoice is not followed: no deal to open")
    currency = _currency(_subscription_currency(subscription), "subscription")
    metadata = [_metadata(subscription)]
    return Mapped(
        events=(
            contract_event(
                "deal.opened",
                _event_id(event),
                _customer(subscription, metadata, "subscription"),
                _occurred_at(event),
                SOURCE,
                deal_id=_deal_id(first_invoice, "the subscription's latest_invoice has no id"),
                amount=_major_units(_list_price(subscription), currency),
                currency=currency,
                owner=_owner(metadata),
            ),
        )
    )


def _subscription_deleted(event: dict[str, Any], subscription: dict[str, Any]) -> Mapped:
    """customer.churned, with Stripe's reason; or, for a subscription that never got paid, what that is."""
    metadata = [_metadata(subscription)]
    if subscription.get("status") == "incomplete_expired":  # its first invoice was never paid
        first_invoice = _id_of(subscription.get("latest_invoice"))
        if first_invoice is None:
            return Mapped(ignored=f"{SUBSCRIPTION_DELETED} of an incomplete subscription without an invoice")
        return Mapped(
            events=(
                contract_event(
                    "deal.lost",
                    _event_id(event),
                    _customer(subscription, metadata, "subscription"),
                    _occurred_at(event),
                    SOURCE,
                    deal_id=_deal_id(first_invoice, "the subscription's latest_invoice has no id"),
                    reason="incomplete_expired: the first payment was never completed",
                ),
            )
        )
    if _ended_in_trial(subscription):
        return Mapped(ignored=f"{SUBSCRIPTION_DELETED} of a subscription that ended in its trial is not a churn")
    return Mapped(
        events=(
            contract_event(
                "customer.churned",
                _event_id(event),
                _customer(subscription, metadata, "subscription"),
                _occurred_at(event),
                SOURCE,
                reason=_churn_reason(subscription.get("cancellation_details")),
            ),
        )
    )


def _data_object(event: dict[str, Any], expected: str) -> dict[str, Any]:
    data = event.get("data")
    found = data.get("object") if isinstance(data, dict) else None
    if not isinstance(found, dict):
        raise UnmappablePayload("the event has no data.object")
    if found.get("object", expected) != expected:
        raise UnmappablePayload(f"{event['type'][:100]} carries {str(found.get('object'))[:40]!r}, not {expected!r}")
    return found


def _event_id(event: dict[str, Any]) -> str:
    """``stripe:<evt_...>``: Stripe's event id is the same in every delivery attempt of the event, so its
    retries are duplicates downstream. One Stripe event maps to one contract event."""
    event_id = event.get("id")
    if not isinstance(event_id, str) or not event_id.strip():
        raise UnmappablePayload("the event has no id")
    return bounded_id(f"{SOURCE}:", event_id.strip(), MAX_EVENT_ID)


def _occurred_at(event: dict[str, Any]) -> datetime:
    """The event's ``created`` (unix seconds): when Stripe recorded the payment or the ending."""
    created = event.get("created")
    if isinstance(created, bool) or not isinstance(created, int | float):
        raise UnmappablePayload("the event's created is not a unix time")
    try:
        return datetime.fromtimestamp(created, UTC)
    except (ValueError, OverflowError, OSError):
        raise UnmappablePayload("the event's created is out of range") from None


def _customer(obj: dict[str, Any], metadata: list[dict[str, Any]], what: str) -> str:
    """The first ``lifecycle_customer_id`` in the object's metadata (then its subscription's, for an
    invoice; then the expanded customer's), else the Stripe customer id (``cus_...``)."""
    customer = obj.get("customer")
    if isinstance(customer, dict):  # expanded
        metadata = [*metadata, _metadata(customer)]
    chosen = _from_metadata(metadata, METADATA_CUSTOMER) or _id_of(customer)
    if chosen is None:
        raise UnmappablePayload(f"the {what} names no customer and no metadata.{METADATA_CUSTOMER}")
    if len(chosen) > MAX_CUSTOMER_ID:
        # a digest would silently be another customer than the CRM's: refused, to be fixed in Stripe
        raise UnmappablePayload(f"the {what}'s customer id is longer than {MAX_CUSTOMER_ID} characters")
    return chosen


def _owner(metadata: list[dict[str, Any]]) -> str:
    owner = _from_metadata(metadata, METADATA_OWNER) or OWNER
    if len(owner) > MAX_OWNER:
        raise UnmappablePayload(f"metadata.{METADATA_OWNER} is longer than {MAX_OWNER} characters")
    return owner


def _invoice_metadata(invoice: dict[str, Any]) -> list[dict[str, Any]]:
    """The invoice's own metadata, then its subscription's as Stripe copies it onto each invoice:
    ``parent.subscription_details.metadata`` (API 2025-03-31 and later), ``subscription_details.metadata``
    (2022-11-15 to then)."""
    parent = invoice.get("parent")
    details = [
        parent.get("subscription_details") if isinstance(parent, dict) else None,
        invoice.get("subscription_details"),
    ]
    return [_metadata(invoice), *(_metadata(d) for d in details if isinstance(d, dict))]


def _metadata(obj: dict[str, Any]) -> dict[str, Any]:
    found = obj.get("metadata")
    return found if isinstance(found, dict) else {}


def _from_metadata(metadata: list[dict[str, Any]], key: str) -> str | None:
    for entries in metadata:
        value = entries.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _id_of(value: Any) -> str | None:
    """A Stripe reference: an id string, or the expanded object's ``id``."""
    if isinstance(value, dict):
        value = value.get("id")
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _deal_id(value: Any, missing: str) -> str:
    """The invoice's id as Stripe writes it (``in_...``): Stripe's ids are unique and prefixed already."""
    deal_id = _id_of(value)
    if deal_id is None:
        raise UnmappablePayload(missing)
    return bounded_id("", deal_id, MAX_DEAL_ID)


def _currency(value: Any, what: str) -> str:
    if not isinstance(value, str) or len(value) != 3 or not value.isascii() or not value.isalpha():
        raise UnmappablePayload(f"the {what} has no three-letter currency")
    return value.upper()


def _major_units(minor: int, currency: str) -> float | int:
    """Minor units -> the currency's units: 1999 USD cents -> 19.99, 5000 JPY -> 5000, 1000 KWD fils -> 1.0.
    Integer division by a power of ten, correctly rounded; an integer stays one for zero-decimal ones."""
    if currency in ZERO_DECIMAL:
        return minor
    return minor / (1000 if currency in THREE_DECIMAL else 100)


def _subscription_currency(subscription: dict[str, Any]) -> Any:
    if subscription.get("currency") is not None:
        return subscription["currency"]
    for item in _items(subscription):
        price = item.get("price") or item.get("plan")
        if isinstance(price, dict) and price.get("currency") is not None:
            return price["currency"]
    return None


def _list_price(subscription: dict[str, Any]) -> int:
    """Sum of the items' per-unit list price x quantity, in minor units; items priced otherwise (tiered,
    metered) count 0: only the paid invoice knows what they cost."""
    total = 0
    for item in _items(subscription):
        price = item.get("price") if isinstance(item.get("price"), dict) else item.get("plan")
        unit = price.get("unit_amount", price.get("amount")) if isinstance(price, dict) else None
        quantity = item.get("quantity", 1)
        if isinstance(unit, bool) or not isinstance(unit, int) or unit < 0:
            continue
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0:
            continue
        total += unit * quantity
    return total


def _items(subscription: dict[str, Any]) -> list[dict[str, Any]]:
    items = subscription.get("items")
    data = items.get("data") if isinstance(items, dict) else None
    return [item for item in data if isinstance(item, dict)] if isinstance(data, list) else []


def _ended_in_trial(subscription: dict[str, Any]) -> bool:
    """Ended (or cancelled) no later than its trial's end: it was never paid for."""
    trial_end = subscription.get("trial_end")
    ended = next(
        (
            value
            for value in (subscription.get("ended_at"), subscription.get("canceled_at"))
            if isinstance(value, int) and not isinstance(value, bool)
        ),
        None,
    )
    return isinstance(trial_end, int) and not isinstance(trial_end, bool) and ended is not None and ended <= trial_end


def _churn_reason(details: Any) -> str | None:
    """``<reason>: <feedback>`` from ``cancellation_details`` (reason: cancellation_requested,
    payment_failed, payment_disputed; feedback: the customer's choice, too_expensive say). The free-text
    ``comment`` is left out: it may hold personal data and has no bound the contract can take."""
    if not isinstance(details, dict):
        return None
    parts = [
        value.strip()
        for value in (details.get("reason"), details.get("feedback"))
        if isinstance(value, str) and value.strip()
    ]
    return ": ".join(parts)[:MAX_REASON] or None
