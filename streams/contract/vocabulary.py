"""The contract's closed sets, read from the JSON Schemas: the schemas are their one definition.

Metrics create a series per value at start-up and the simulator draws from them; neither types the
values again.
"""

from __future__ import annotations

from typing import Any

import schemas


def _enum(event_type: str, field: str) -> tuple[str, ...]:
    document: dict[str, Any] = schemas.load_schemas()[event_type]
    return tuple(document["properties"][field]["enum"])


EVENT_TOPICS: dict[str, str] = schemas.event_types()  # event type -> the contract topic it belongs on
LEAD_CHANNELS = _enum("lead.created", "channel")
TICKET_CHANNELS = _enum("ticket.opened", "channel")
PRIORITIES = _enum("ticket.opened", "priority")
