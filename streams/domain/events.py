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
