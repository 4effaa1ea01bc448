"""RFC 3339 times on the wire, naive UTC inside: every time in the pipeline is UTC."""

from __future__ import annotations

from datetime import UTC, datetime


def parse_timestamp(text: str) -> datetime:
    """RFC 3339 with zone -> naive UTC, to the microsecond (later digits are dropped, so two times that
    differ below it are equal, and ``event_id`` orders them). The schema's pattern demands the zone;
    RFC 3339 allows a lower-case ``t`` and ``z``, which ``fromisoformat`` does not. A time whose UTC
    falls outside years 1-9999 cannot be held and raises ValueError, as an impossible date does."""
    moment = datetime.fromisoformat(text.upper())
    if moment.tzinfo is None:
        raise ValueError("timestamp has no zone")
    try:
        return moment.astimezone(UTC).replace(tzinfo=None)
    except OverflowError:
        raise ValueError("its UTC time is outside years 1-9999") from None


def format_timestamp(moment: datetime) -> str:
    return moment.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")
