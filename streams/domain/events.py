"""A validated event, as the domain sees it: the contract (:mod:`streams.contract.decoding`) makes these."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Event:
    event_id: str
    type: str
    customer_id: str
    occurred_at: datetime  # UTC, naive: every time in the pipeline is UTC
    data: Mapping[str, Any]
    # the deal or ticket it is about, where the contract puts one: ``deal_id`` on deal.*, ``ticket_id`` on
    # ticket.* and csat.*; the same names on another type are extra fields, ignored like all others
    deal_id: str | None = None
    ticket_id: str | None = None
