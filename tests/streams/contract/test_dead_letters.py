"""Dead letters always fit the dead-letter topic: cut to the limit, with what the original was in headers."""

from __future__ import annotations

import hashlib
from types import SimpleNamespace
from typing import Any

import pytest

from streams.contract.dead_letters import (
    H_HEADERS_DROPPED,
    H_ORIGINAL_KEY_SIZE,
    H_ORIGINAL_SHA256,
    H_ORIGINAL_SIZE,
    H_TRUNCATED,
    PREFIX,
    dead_letter_headers,
    fit_dead_letter,
    parse_dead_letter,
    record_size,
)
from streams.contract.messages import DeadLetter, RawMessage
from streams.domain.errors import ErrorClass
from streams.kafka.dead_letters import replay
from streams.settings import Settings

LIMIT = 10_000


def letter(
    value: bytes | None, *, key: bytes | None = b"c-1", headers: list[tuple[str, bytes]] | None = None
) -> DeadLetter:
    message = RawMessage("leads", 3, 42, key, value, headers if headers is not None else [("trace", b"t-1")])
    return DeadLetter(message, ErrorClass.TOO_LARGE, f"message of {len(value or b'')} bytes exceeds the limit")


def fitted(dead: DeadLetter, limit: int = LIMIT) -> tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]:
    return fit_dead_letter(dead.message.key, dead.message.value, dead_letter_headers(dead), limit)


def stored(record: tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]) -> Any:
    key, value, headers = record
    return parse_dead_letter(SimpleNamespace(partition=0, offset=7, key=key, value=value, headers=headers))


def test_a_dead_letter_within_the_limit_is_unchanged() -> None:
    dead = letter(b"x" * 5000)
    headers = dead_letter_headers(dead)
    key, value, kept = fit_dead_letter(dead.message.key, dead.message.value, headers, LIMIT)
    assert (key, value, kept) == (b"c-1", b"x" * 5000, headers)
    parsed = stored((key, value, kept))
    assert (parsed.truncated, parsed.original_size, parsed.original_sha256) == (False, None, None)
    assert parsed.as_dict()["truncated"] is False


def test_a_larger_one_is_cut_to_fit_with_the_original_size_and_sha256() -> None:
    original = bytes(range(256)) * 200  # 51,200 bytes
    key, value, headers = fitted(letter(original))
    assert record_size(key, value, headers) <= LIMIT
    assert value is not None and 0 < len(value) < len(original) and original.startswith(value)
    found = dict(headers)
    assert found[H_TRUNCATED] == b"true"
    assert found[H_ORIGINAL_SIZE] == b"51200"
    assert found[H_ORIGINAL_SHA256] == hashlib.sha256(original).hexdigest().encode()
    assert H_HEADERS_DROPPED not in found and key == b"c-1"
    # the original headers first and whole, then ours, as for any dead letter
    assert headers[0] == ("trace", b"t-1")
    assert found[PREFIX + "class"] == b"too_large" and found[PREFIX + "offset"] == b"42"

    parsed = stored((key, value, headers))
    assert parsed.truncated and parsed.original_size == len(original)
    assert parsed.original_sha256 == hashlib.sha256(original).hexdigest()
    assert parsed.original_headers == [("trace", b"t-1")] and parsed.error_class == "too_large"
    listed = parsed.as_dict()
    assert (listed["truncated"], listed["original_size"], listed["original_sha256"]) == (
        True,
        len(original),
        parsed.original_sha256,
    )


def test_original_headers_too_large_to_keep_are_dropped_and_counted() -> None:
    huge = [(f"h-{n}", b"y" * 1000) for n in range(30)]  # 30 kB of headers against a 10 kB limit
    original = b"z" * 3000
    key, value, headers = fitted(letter(original, headers=huge))
    assert record_size(key, value, headers) <= LIMIT
    found = dict(headers)
    assert not any(name.startswith("h-") for name, _ in headers)
    assert found[H_HEADERS_DROPPED] == b"30" and found[H_TRUNCATED] == b"true"
    assert found[H_ORIGINAL_SIZE] == b"3000"
    assert found[H_ORIGINAL_SHA256] == hashlib.sha256(original).hexdigest().encode()
    assert value == original  # room freed by the headers: the value itself is whole here
    assert found[PREFIX + "topic"] == b"leads" and found[PREFIX + "reason"]
    assert stored((key, value, headers)).original_headers == []


def test_the_limit_itself_fits_and_one_byte_more_is_cut() -> None:
    headers = dead_letter_headers(letter(b""))
    exactly = LIMIT - record_size(b"c-1", None, headers)
    at_limit = b"v" * exactly
    assert record_size(b"c-1", at_limit, headers) == LIMIT
    assert fit_dead_letter(b"c-1", at_limit, headers, LIMIT) == (b"c-1", at_limit, headers)

    over = at_limit + b"v"
    key, value, kept = fit_dead_letter(b"c-1", over, headers, LIMIT)
    assert record_size(key, value, kept) == LIMIT  # the room is used up to the limit, not beyond
    assert dict(kept)[H_ORIGINAL_SIZE] == str(exactly + 1).encode()
    assert value is not None and over.startswith(value) and len(value) < exactly


def test_a_key_larger_than_the_limit_is_cut_too() -> None:
    key, value, headers = fitted(letter(b"v" * 100, key=b"k" * 50_000))
    assert record_size(key, value, headers) <= LIMIT
    assert key is not None and key != b"k" * 50_000 and (b"k" * 50_000).startswith(key)
    assert dict(headers)[H_ORIGINAL_KEY_SIZE] == b"50000"


def test_our_own_headers_fit_the_smallest_limit_the_settings_allow() -> None:
    """The largest headers we write: a topic name of Kafka's maximum length, the reason at its cap."""
    minimum = Settings.model_fields["dead_letter_max_bytes"].metadata[0].ge
    message = RawMessage("t" * 249, 2**31 - 1, 2**63 - 1, b"k" * 500_000, b"v" * 2_000_000, [("h", b"x" * 9000)])
    dead = DeadLetter(message, ErrorClass.UNSUPPORTED_SCHEMA_VERSION, "r" * 10_000)
    key, value, headers = fit_dead_letter(message.key, message.value, dead_letter_headers(dead), minimum)
    assert record_size(key, value, headers) <= minimum
    assert len(dict(headers)[PREFIX + "reason"]) == 2000


def test_a_limit_below_our_own_headers_is_refused() -> None:
    with pytest.raises(ValueError, match="own headers"):
        fitted(letter(b"x" * 5000), limit=600)


def test_replay_skips_truncated_dead_letters() -> None:
    whole = stored(fitted(letter(b"{not json")))
    cut = stored(fitted(letter(b"x" * 50_000)))
    sent: list[tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]]] = []
    result = replay([whole, cut], lambda *record: sent.append(record))
    assert (result.sent, result.skipped) == (1, 1)
    assert sent == [("leads", b"c-1", b"{not json", [("trace", b"t-1")])]
