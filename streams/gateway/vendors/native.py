"""``POST /events``: the contract itself over HTTP, as one event, a JSON array of events, or NDJSON.

The events pass through unchanged: the publisher validates each against the contract (and dead-letters
the ones it refuses). This module only reads the body, strictly (orjson, the pipeline's JSON), and
refuses a body it cannot split into JSON objects as a whole, since which of its parts were meant as
events cannot be told.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

import orjson

from streams.domain.errors import RefusedRequest, UnmappablePayload
from streams.gateway.mapping import Mapped, header, media_type

SOURCE = "native"
NDJSON_TYPES = frozenset({"application/x-ndjson", "application/ndjson"})
_BLANK = b" \t\r"


def map_request(body: bytes, headers: Mapping[str, str]) -> Mapped:
    """The events of a request: NDJSON by its content type (``application/x-ndjson``), else one JSON
    object or an array of objects. Without a content type (``lifecycle translate``), JSON if the body is
    JSON as a whole, else NDJSON."""
    kind = media_type(headers)
    if kind is not None and kind not in NDJSON_TYPES and not _is_json(kind):
        raise RefusedRequest(415, f"content type {kind[:100]!r}: send application/json or application/x-ndjson")
    if not body.strip(_BLANK + b"\n"):
        raise UnmappablePayload("the body is empty: no event")
    if kind in NDJSON_TYPES:
        return Mapped(events=_ndjson(body))
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if kind is None:
            return Mapped(events=_ndjson(body))
        raise UnmappablePayload(f"the body is not JSON: {exc}") from None
    if isinstance(document, dict):
        return Mapped(events=(document,))
    if isinstance(document, list):
        for index, item in enumerate(document):
            if not isinstance(item, dict):
                raise UnmappablePayload(f"item {index} of the array is not a JSON object")
        return Mapped(events=tuple(document))
    raise UnmappablePayload("the body must be a JSON object (one event) or an array of objects")


def authenticate_bearer(headers: Mapping[str, str], token: str) -> None:
    """``Authorization: Bearer <LIFECYCLE_GATEWAY_TOKEN>``, compared in constant time. No token set: the
    endpoint is disabled (404), never open."""
    if not token:
        raise RefusedRequest(404, "the endpoint is disabled: no token is set")
    value = header(headers, "authorization")
    if value is None:
        raise RefusedRequest(401, "no bearer token")
    scheme, _, credentials = value.strip().partition(" ")
    credentials = credentials.strip()
    if scheme.lower() != "bearer" or not credentials:
        raise RefusedRequest(401, "the Authorization header is not a bearer token")
    if not hmac.compare_digest(credentials.encode(), token.encode()):
        raise RefusedRequest(401, "wrong bearer token")


def _ndjson(body: bytes) -> tuple[dict[str, Any], ...]:
    """One object per line, blank lines skipped; a line that is not one refuses the body, by its number."""
    events: list[dict[str, Any]] = []
    for number, line in enumerate(body.split(b"\n"), start=1):
        if not line.strip(_BLANK):
            continue
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise UnmappablePayload(f"line {number} is not JSON: {exc}") from None
        if not isinstance(event, dict):
            raise UnmappablePayload(f"line {number} is not a JSON object")
        events.append(event)
    return tuple(events)


def _is_json(media_type: str) -> bool:
    return media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json"))
