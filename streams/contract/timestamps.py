"""RFC 3339 times on the wire, naive UTC inside: every time in the pipeline is UTC."""

from __future__ import annotations

from datetime import UTC, datetime


def parse_timestamp(text: str) -> datetime:
    """RFC 3339 with zone -> naive UTC. The schema's pattern already demands the zone."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError("timestamp has no zone")
    return moment.astimezone(UTC).replace(tzinfo=None)


def format_timestamp(moment: datetime) -> str:
    return moment.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")
