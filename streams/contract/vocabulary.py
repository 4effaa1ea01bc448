"""The contract's closed sets, read from the JSON Schemas: the schemas are their one definition.

Metrics create a series per value at start-up and the simulator draws from them; neither types the
values again.
"""

from __future__ import annotations

from typing import Any

import pycountry

import schemas


def _enum(event_type: str, field: str) -> tuple[str, ...]:
    document: dict[str, Any] = schemas.load_schemas()[event_type]
    return tuple(document["properties"][field]["enum"])


EVENT_TOPICS: dict[str, str] = schemas.event_types()  # event type -> the contract topic it belongs on
LEAD_CHANNELS = _enum("lead.created", "channel")
TICKET_CHANNELS = _enum("ticket.opened", "channel")
PRIORITIES = _enum("ticket.opened", "priority")

# ISO 4217 alphabetic codes, from pycountry's maintained copy of the standard: a ``currency`` label's values
CURRENCIES: frozenset[str] = frozenset(currency.alpha_3 for currency in pycountry.currencies)


def _free_text(event_type: str) -> tuple[str, ...]:
    """The string properties of a type (its own over the envelope's) that no pattern, enum or const confines."""
    documents = schemas.load_schemas()
    properties = {**documents[schemas.ENVELOPE]["properties"], **documents[event_type]["properties"]}
    return tuple(
        name
        for name, spec in properties.items()
        if spec.get("type") == "string" and not {"pattern", "enum", "const"} & spec.keys()
    )


# event type -> the fields of free text the pipeline stores or labels: where a NUL character is refused
FREE_TEXT_FIELDS: dict[str, tuple[str, ...]] = {event_type: _free_text(event_type) for event_type in EVENT_TOPICS}
MONEY_TYPES = frozenset(
    event_type for event_type in EVENT_TOPICS if "currency" in schemas.load_schemas()[event_type]["properties"]
)


def _required(event_type: str, name: str) -> bool:
    return name in schemas.load_schemas()[event_type].get("required", ())


# event type -> whether it names a deal (``deal_id``) and a ticket (``ticket_id``): its schema requires them
ITEM_KEYS: dict[str, tuple[bool, bool]] = {
    event_type: (_required(event_type, "deal_id"), _required(event_type, "ticket_id")) for event_type in EVENT_TOPICS
}


def _fields(event_type: str) -> tuple[str, ...]:
    documents = schemas.load_schemas()
    return tuple(sorted({*documents[schemas.ENVELOPE]["properties"], *documents[event_type]["properties"]}))


# event type -> every field its schema names (the envelope's too), sorted: the content that the pipeline
# reads; any other field is ignored
CONTRACT_FIELDS: dict[str, tuple[str, ...]] = {event_type: _fields(event_type) for event_type in EVENT_TOPICS}

_CUSTOMER_ID = schemas.load_schemas()[schemas.ENVELOPE]["properties"]["customer_id"]


def could_be_customer_id(text: str) -> bool:
    """Whether the contract accepts ``text`` as a customer_id: a look-up by any other needs no database,
    and PostgreSQL refuses a NUL character outright."""
    return _CUSTOMER_ID["minLength"] <= len(text) <= _CUSTOMER_ID["maxLength"] and "\x00" not in text
