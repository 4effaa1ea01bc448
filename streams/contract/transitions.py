"""The ``lifecycle`` topic's format: one JSON object per stage transition, keyed by customer."""

from __future__ import annotations

import orjson

from streams.contract.timestamps import format_timestamp
from streams.domain.journey import Transition


def transition_message(transition: Transition) -> bytes:
    return orjson.dumps(
        {
            "customer_id": transition.customer_id,
            "from": transition.from_stage.value if transition.from_stage else None,
            "to": transition.to_stage.value,
            "occurred_at": format_timestamp(transition.occurred_at),
            "event_id": transition.event_id,
            "previous_stage_entered_at": (
                format_timestamp(transition.previous_stage_entered_at)
                if transition.previous_stage_entered_at is not None
                else None
            ),
            "seconds_in_previous_stage": transition.seconds_in_previous_stage,
        }
    )
