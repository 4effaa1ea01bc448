"""What a source's payload maps to: the contract events, or why none. The gateway and
``lifecycle translate`` share it; the mapping does no I/O and validates nothing itself (the
publisher validates every event against the contract before it is sent)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from multidict import CIMultiDict, CIMultiDictProxy

from streams.contract.timestamps import format_timestamp
from streams.domain.periods import naive_utc

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Mapped:
    """A payload's contract events (JSON objects, in the order they happened), or none and why
    (``ignored``: a vendor event type the product does not follow, answered 200 and counted)."""

    events: tuple[dict[str, Any], ...] = ()
    ignored: str | None = None


@dataclass(frozen=True)
class MappingOptions:
    """Which of a vendor's objects is the customer (settings ``LIFECYCLE_GATEWAY_*_CUSTOMER``)."""

    pipedrive_customer: Literal["organization", "person"] = "organization"
    zendesk_customer: Literal["organization", "requester"] = "organization"


def contract_event(
    event_type: str, event_id: str, customer_id: str, occurred_at: Any, source: str, **fields: Any
) -> dict[str, Any]:
    """A contract event as the vendors' mappings build it; ``occurred_at``: an aware datetime (or a naive
    one in UTC) or an RFC 3339 string. Fields whose value is None are left out (the contract's optional
    fields)."""
    if isinstance(occurred_at, datetime):
        if occurred_at.tzinfo is not None:
            occurred_at = naive_utc(occurred_at)
        occurred_at = format_timestamp(occurred_at)
    at = occurred_at
    return {
        "event_id": event_id,
        "type": event_type,
        "customer_id": customer_id,
        "occurred_at": at,
        "schema_version": SCHEMA_VERSION,
        "source": source,
        **{name: value for name, value in fields.items() if value is not None},
    }


def bounded_id(prefix: str, value: str, limit: int) -> str:
    """``prefix + value``, or ``prefix`` + the value's BLAKE2b digest when that is longer than ``limit``:
    ids stay deterministic (a vendor's retry maps to the same) and within the contract's lengths."""
    text = prefix + value
    if len(text) <= limit:
        return text
    return prefix + hashlib.blake2b(value.encode(), digest_size=16).hexdigest()


def media_type(headers: Mapping[str, str]) -> str | None:
    """The request's Content-Type without its parameters, lower-cased (None: no Content-Type)."""
    value = header(headers, "content-type")
    return None if value is None else value.split(";", 1)[0].strip().lower()


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A request header by its case-insensitive name: aiohttp's headers (a multidict's CIMultiDictProxy)
    find it themselves; a plain mapping (``lifecycle translate``'s, the tests') is searched."""
    if isinstance(headers, CIMultiDictProxy | CIMultiDict):
        return headers.get(name)
    wanted = name.lower()
    return next((value for key, value in headers.items() if key.lower() == wanted), None)
