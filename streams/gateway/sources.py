"""The gateway's sources: for each, whether it is enabled, how a request is authenticated, which
content types it reads and what its body maps to. The HTTP server and ``lifecycle translate`` both go
through :func:`translate`, so a payload maps offline exactly as it does live."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from streams.domain.errors import UnmappablePayload
from streams.gateway.mapping import Mapped, MappingOptions, header, media_type
from streams.gateway.vendors import cloudevents, native, pipedrive, stripe, zendesk
from streams.settings import Settings

JSON = frozenset({"application/json"})
EVENTS = frozenset(
    {
        "application/json",
        "application/x-ndjson",
        "application/ndjson",
        "application/cloudevents+json",
        "application/cloudevents-batch+json",
    }
)
Authenticate = Callable[[bytes, Mapping[str, str], Settings, float], None]
Translate = Callable[[bytes, Mapping[str, str], MappingOptions], Mapped]


@dataclass(frozen=True)
class Source:
    name: str
    enabled: Callable[[Settings], bool]  # a source without its secret is off: 404, never open
    authenticate: Authenticate
    translate: Translate
    content_types: frozenset[str]  # of the Content-Type header, without its parameters


def _secret(value: Any) -> str:
    return str(value.get_secret_value())


def _vendor(map_payload: Callable[[Any, MappingOptions], Mapped]) -> Translate:
    def translate(body: bytes, _headers: Mapping[str, str], options: MappingOptions) -> Mapped:
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise UnmappablePayload(f"the body is not JSON: {exc}") from None
        return map_payload(payload, options)

    return translate


def _native_or_cloudevent(body: bytes, headers: Mapping[str, str], options: MappingOptions) -> Mapped:
    """``POST /events`` takes the native contract and CloudEvents alike: a CloudEvent says so in its
    content type (structured, batched) or its ``ce-specversion`` header (binary)."""
    if is_cloudevent(headers):
        return cloudevents.map_request(body, headers)
    return native.map_request(body, headers)


def is_cloudevent(headers: Mapping[str, str]) -> bool:
    kind = media_type(headers) or ""
    return kind.startswith("application/cloudevents") or header(headers, "ce-specversion") is not None


SOURCES: dict[str, Source] = {
    source.name: source
    for source in (
        Source(
            stripe.SOURCE,
            lambda s: s.gateway_stripe_secret is not None,
            lambda body, headers, s, now: stripe.authenticate(body, headers, _secret(s.gateway_stripe_secret), now),
            _vendor(stripe.map_payload),
            JSON,
        ),
        Source(
            zendesk.SOURCE,
            lambda s: s.gateway_zendesk_secret is not None,
            lambda body, headers, s, now: zendesk.authenticate(body, headers, _secret(s.gateway_zendesk_secret), now),
            _vendor(zendesk.map_payload),
            JSON,
        ),
        Source(
            pipedrive.SOURCE,
            lambda s: s.gateway_pipedrive_username is not None and s.gateway_pipedrive_password is not None,
            lambda body, headers, s, now: pipedrive.authenticate(
                body, headers, _secret(s.gateway_pipedrive_username), _secret(s.gateway_pipedrive_password), now
            ),
            _vendor(pipedrive.map_payload),
            JSON,
        ),
        Source(
            native.SOURCE,
            lambda s: s.gateway_token is not None,
            lambda body, headers, s, now: native.authenticate_bearer(headers, _secret(s.gateway_token)),
            _native_or_cloudevent,
            EVENTS,  # a binary-mode CloudEvent's content type is its data's: JSON
        ),
    )
}
VENDORS = (pipedrive.SOURCE, zendesk.SOURCE, stripe.SOURCE)  # served at /webhooks/{source}
TRANSLATABLE = (*VENDORS, cloudevents.SOURCE, native.SOURCE)  # `lifecycle translate --source`


def options_from(settings: Settings) -> MappingOptions:
    return MappingOptions(settings.gateway_pipedrive_customer, settings.gateway_zendesk_customer)


def translate(source: str, body: bytes, headers: Mapping[str, str], options: MappingOptions) -> Mapped:
    """What ``body`` from ``source`` maps to (no authentication: the caller's). Raises
    :class:`UnmappablePayload`."""
    if source == cloudevents.SOURCE:
        return cloudevents.map_request(body, headers)
    if source == native.SOURCE:
        return native.map_request(body, headers)
    return SOURCES[source].translate(body, headers, options)
