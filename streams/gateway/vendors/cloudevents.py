"""CloudEvents over HTTP, structured and binary content mode, whose ``data`` is one contract event.

The binding is read by the official SDK (``cloudevents``, its 2.x ``cloudevents.core`` API), never by
hand: it tells the modes apart (any ``ce-`` header: binary), maps the headers or the envelope to
attributes and checks the required ones. What this module adds: JSON read strictly (orjson, as the
pipeline reads it: no NaN, no lone surrogate, which the standard library would let through to the
publisher), ``datacontenttype`` must be JSON, ``data`` must be an object. The contract event is passed
through as it is, its own ``event_id`` included; the CloudEvent's ``id``, ``source`` and ``time`` are not
read (the contract event has its own). Batched mode (``application/cloudevents-batch+json``, a JSON
array of structured-mode events): the SDK (2.2) has no reader for the batch, so the array is split here
and each of its elements read by the SDK's JSON event format, as a structured-mode body is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from cloudevents.core.base import BaseCloudEvent, EventFactory
from cloudevents.core.bindings.http import HTTPMessage, from_http
from cloudevents.core.formats.json import JSONFormat

from streams.domain.errors import UnmappablePayload
from streams.gateway.mapping import Mapped, media_type

SOURCE = "cloudevents"
BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"
_REASON_CHARS = 200


class _StrictJSONFormat(JSONFormat):
    """The SDK's JSON event format with the pipeline's JSON: the SDK's own ``json.loads`` accepts NaN and
    lone surrogates, which the publisher's orjson would then turn into ``null`` or refuse with a 500."""

    def read(self, event_factory: EventFactory | None, data: str | bytes) -> BaseCloudEvent:
        document = orjson.loads(data)
        if not isinstance(document, dict):
            raise ValueError("a structured-mode CloudEvent is a JSON object")
        if "specversion" not in document:  # the SDK would default it: a plain JSON object is no CloudEvent
            raise ValueError("no specversion attribute")
        return super().read(event_factory, data)

    def read_data(self, body: bytes, datacontenttype: str | None) -> dict[str, Any] | str | bytes | None:
        if body and _is_json(datacontenttype):
            data: dict[str, Any] | str | bytes | None = orjson.loads(body)
            return data
        return super().read_data(body, datacontenttype)


_FORMAT = _StrictJSONFormat()


def map_request(body: bytes, headers: Mapping[str, str]) -> Mapped:
    """The contract events a CloudEvents HTTP request carries in its ``data``: one, or one per event of
    a batch (in the batch's order)."""
    if media_type(headers) == BATCH_CONTENT_TYPE:
        return Mapped(events=_batch(body))
    try:
        event = from_http(HTTPMessage(headers=dict(headers), body=body), _FORMAT)
    except Exception as exc:  # the SDK raises ValueError, TypeError, KeyError, its own errors: all the input's
        raise UnmappablePayload(f"not a CloudEvent: {str(exc)[:_REASON_CHARS]}") from None
    return Mapped(events=(_contract_event(event),))


def _batch(body: bytes) -> tuple[dict[str, Any], ...]:
    try:
        batch = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise UnmappablePayload(f"the CloudEvents batch is not JSON: {exc}") from None
    if not isinstance(batch, list):
        raise UnmappablePayload("a CloudEvents batch is a JSON array of events")
    events = []
    for index, element in enumerate(batch):
        try:
            event = _FORMAT.read(None, orjson.dumps(element))
        except Exception as exc:  # as in map_request: the SDK's errors are the input's
            raise UnmappablePayload(
                f"event {index} of the batch is not a CloudEvent: {str(exc)[:_REASON_CHARS]}"
            ) from None
        try:
            events.append(_contract_event(event))
        except UnmappablePayload as exc:
            raise UnmappablePayload(f"event {index} of the batch: {exc.reason}") from None
    return tuple(events)


def _contract_event(event: BaseCloudEvent) -> dict[str, Any]:
    """The event's ``data``, which must be one contract event: a JSON object of a JSON content type."""
    datacontenttype = event.get_datacontenttype()
    if datacontenttype is not None and not _is_json(datacontenttype):
        raise UnmappablePayload(f"datacontenttype {datacontenttype[:100]!r} is not JSON: data must be a contract event")
    data = event.get_data()
    if isinstance(data, bytes | bytearray):  # data_base64 of a JSON type
        try:
            data = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise UnmappablePayload(f"the CloudEvent's data is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise UnmappablePayload("the CloudEvent's data must be one contract event (a JSON object)")
    return data


def _is_json(content_type: str | None) -> bool:
    """No content type is JSON (the CloudEvents default); else the SDK's own test of a JSON media type."""
    if content_type is None:
        return True
    return JSONFormat.JSON_CONTENT_TYPE_PATTERN.match(content_type.strip().lower()) is not None
