"""The digest of an event's content, kept with its id: a redelivery has the same, a reused id another."""

from __future__ import annotations

import hashlib

import orjson

from streams.contract.vocabulary import CONTRACT_FIELDS
from streams.domain.events import Event


def content_digest(event: Event) -> int:
    """64 bits of BLAKE2b over the values of the fields the contract names for the event's type, as a
    signed integer (a BIGINT column).

    The content is what the pipeline reads: fields the contract does not name are ignored here as
    everywhere (a producer may add a trace id to a redelivery), whatever their depth. Only two contents
    under one id are ever compared, so 64 bits leave a chance of 2^-64 to take a reused id for a
    redelivery. Spelling counts: ``1000`` and ``1000.0``, or another zone offset for the same instant,
    are other content."""
    data = event.data
    text = orjson.dumps([data.get(name) for name in CONTRACT_FIELDS[event.type]])
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big", signed=True)
